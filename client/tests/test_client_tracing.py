"""Trace context: W3C traceparent/tracestate and B3 read from requests, handed on to calls
with the parent links right; OpenTelemetry's own propagators used where the service has it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from signalbox_client import TraceASGI, TraceWSGI, inject
from signalbox_client.tracing import (
    STATE_MAX_CHARS,
    current,
    extract,
    parse,
    parse_tracestate,
)

INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CLIENT_DIR = Path(__file__).resolve().parent.parent


def test_it_parses_valid_headers_and_refuses_invalid_ones() -> None:
    context = parse(INCOMING)
    assert context is not None and context.trace_id == TRACE
    assert context.header == INCOMING
    for bad in (
        None,
        "",
        "garbage",
        INCOMING.upper(),
        "ff" + INCOMING[2:],
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        INCOMING + "-extra",
    ):
        assert parse(bad) is None, bad
    assert parse("01" + INCOMING[2:] + "-future") is not None  # later versions: read the first four


def _wsgi(environ: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["headers"] = dict(inject({}))
        seen["context"] = current()
        start_response("200 OK", [])
        return [b""]

    TraceWSGI(app)(environ, lambda *a: None)
    return seen


def test_an_outgoing_call_continues_the_trace_with_this_span_as_its_parent() -> None:
    seen = _wsgi({"HTTP_TRACEPARENT": INCOMING})
    server_span = seen["context"]
    assert server_span.trace_id == TRACE
    assert server_span.parent_id == CALLER_SPAN  # the caller's span is our parent
    assert server_span.span_id != CALLER_SPAN
    outgoing = parse(seen["headers"]["traceparent"])
    assert outgoing is not None and outgoing.trace_id == TRACE
    # The next service's parent is our span, not a made-up one nobody reports.
    assert outgoing.span_id == server_span.span_id
    assert "tracestate" not in seen["headers"]
    assert current() is None  # nothing leaks past the request


def test_tracestate_is_passed_on_verbatim() -> None:
    state = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7,ot=th:8"
    seen = _wsgi({"HTTP_TRACEPARENT": INCOMING, "HTTP_TRACESTATE": state})
    assert seen["headers"]["tracestate"] == state
    assert seen["context"].tracestate == state


def test_tracestate_limits() -> None:
    assert parse_tracestate("a=1,,b=2") == "a=1,,b=2"  # valid (empty members allowed): verbatim
    assert parse_tracestate(["a=1", "b=2"]) == "a=1,b=2"  # several header lines joined
    assert parse_tracestate(",".join(f"k{i}=v" for i in range(32))).count("=") == 32
    assert parse_tracestate(",".join(f"k{i}=v" for i in range(33))) == ""  # over 32 members
    for bad in ("novalue", "A=1", "a=1,a=2", "a=x=,", "a= "):
        assert parse_tracestate(bad) == "", bad
    assert parse_tracestate("vendor@tenant=1") == "vendor@tenant=1"
    # Over 512 characters: the members over 128 characters go first, then from the end.
    long = "big=" + "x" * 200
    members = [f"k{i}=" + "v" * 40 for i in range(12)]  # 12 * 44 + 11 = 539
    cut = parse_tracestate(",".join([members[0], long, *members[1:]]))
    assert len(cut) <= STATE_MAX_CHARS
    assert "big=" not in cut and cut.startswith("k0=") and "k11=" not in cut


def test_b3_single_header() -> None:
    seen = _wsgi({"HTTP_B3": f"{TRACE}-{CALLER_SPAN}-1-05e3ac9a4f6e3b90"})
    assert seen["context"].trace_id == TRACE and seen["context"].parent_id == CALLER_SPAN
    assert seen["headers"]["traceparent"].endswith("-01")
    # 64-bit trace ids are left-padded; sampled 0 stays unsampled; d (debug) is sampled.
    short = extract({"b3": f"a3ce929d0e0e4736-{CALLER_SPAN}-0"})
    assert short is not None and short.trace_id == "0" * 16 + "a3ce929d0e0e4736"
    assert short.flags == 0
    debug = extract({"b3": f"{TRACE}-{CALLER_SPAN}-d"})
    assert debug is not None and debug.flags == 1
    # `b3: 0` carries no ids: a new trace, not sampled.
    seen = _wsgi({"HTTP_B3": "0"})
    assert seen["context"].trace_id != TRACE and seen["context"].parent_id is None
    assert seen["headers"]["traceparent"].endswith("-00")
    zero = f"{'0' * 32}-{CALLER_SPAN}"
    for bad in ("garbage", f"{TRACE}-short", f"{TRACE}-{CALLER_SPAN}-x", zero):
        assert extract({"b3": bad}) is None, bad


def test_b3_multi_headers() -> None:
    environ = {
        "HTTP_X_B3_TRACEID": "a3ce929d0e0e4736",
        "HTTP_X_B3_SPANID": CALLER_SPAN,
        "HTTP_X_B3_PARENTSPANID": "05e3ac9a4f6e3b90",
        "HTTP_X_B3_SAMPLED": "1",
    }
    seen = _wsgi(environ)
    assert seen["context"].trace_id == "0000000000000000a3ce929d0e0e4736"
    assert seen["context"].parent_id == CALLER_SPAN
    assert seen["headers"]["traceparent"].split("-")[1] == seen["context"].trace_id
    unsampled = extract({"x-b3-traceid": TRACE, "x-b3-spanid": CALLER_SPAN, "x-b3-sampled": "0"})
    assert unsampled is not None and unsampled.flags == 0
    flagged = extract(
        {"x-b3-traceid": TRACE, "x-b3-spanid": CALLER_SPAN, "x-b3-sampled": "0", "x-b3-flags": "1"}
    )
    assert flagged is not None and flagged.flags == 1  # debug wins
    # W3C wins over B3 when both are sent.
    both = extract({"traceparent": INCOMING, "b3": f"{'1' * 32}-{'2' * 16}-1"})
    assert both is not None and both.trace_id == TRACE


def test_asgi_reads_headers_and_keeps_the_parent_link() -> None:
    import asyncio

    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["context"] = current()
        seen["headers"] = dict(inject({}))

    scope = {
        "type": "http",
        "headers": [(b"traceparent", INCOMING.encode()), (b"tracestate", b"rojo=1")],
    }
    asyncio.run(TraceASGI(app)(scope, None, None))
    assert seen["context"].parent_id == CALLER_SPAN
    assert seen["headers"]["traceparent"].split("-")[2] == seen["context"].span_id
    assert seen["headers"]["tracestate"] == "rojo=1"


def test_without_an_incoming_trace_a_new_one_starts() -> None:
    headers = inject({})
    assert parse(headers["traceparent"]) is not None


@pytest.fixture
def b3_propagator() -> Iterator[None]:
    """A non-default global propagator, as a service using OpenTelemetry sets one."""
    from opentelemetry import propagate
    from opentelemetry.propagators.textmap import TextMapPropagator

    class UpperB3(TextMapPropagator):  # a real (if tiny) propagator: B3 single, written too
        def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
            from opentelemetry import trace

            raw = carrier.get("b3") if hasattr(carrier, "get") else None
            if not raw:
                return context
            trace_id, span_id = raw.split("-")[:2]
            span = trace.NonRecordingSpan(
                trace.SpanContext(int(trace_id, 16), int(span_id, 16), True, trace.TraceFlags(1))
            )
            return trace.set_span_in_context(span, context)

        def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
            from opentelemetry import trace

            sc = trace.get_current_span(context).get_span_context()
            carrier["b3"] = f"{sc.trace_id:032x}-{sc.span_id:016x}-1"

        @property
        def fields(self) -> set[str]:
            return {"b3"}

    before = propagate.get_global_textmap()
    propagate.set_global_textmap(UpperB3())
    try:
        yield
    finally:
        propagate.set_global_textmap(before)


@pytest.mark.usefixtures("b3_propagator")
def test_a_configured_opentelemetry_propagator_is_used_instead_of_ours() -> None:
    seen = _wsgi({"HTTP_B3": f"{TRACE}-{CALLER_SPAN}-1"})
    # OTel's propagator wrote the outgoing header (B3 here), not our traceparent.
    assert "traceparent" not in seen["headers"]
    trace_id, span_id, _ = seen["headers"]["b3"].split("-")
    assert trace_id == TRACE
    assert span_id == seen["context"].span_id and seen["context"].parent_id == CALLER_SPAN


def test_with_the_default_opentelemetry_setup_ours_is_used() -> None:
    seen = _wsgi({"HTTP_TRACEPARENT": INCOMING, "HTTP_B3": f"{'1' * 32}-{'2' * 16}-1"})
    assert seen["headers"]["traceparent"].split("-")[1] == TRACE


def test_with_an_sdk_tracer_provider_the_otel_span_is_the_parent() -> None:
    """A real opentelemetry-sdk TracerProvider in a fresh interpreter (it can be set once per
    process): an instrumented server span is current, and inject() links calls to it."""
    script = f"""
import json, sys
sys.path.insert(0, {str(CLIENT_DIR)!r})
from opentelemetry import trace, propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from signalbox_client import TraceWSGI, inject
from signalbox_client.tracing import current
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("t")
out = {{}}
def app(environ, start_response):
    ours = current()
    out["ours"], out["ours_parent"] = ours.span_id, ours.parent_id
    with tracer.start_as_current_span("work"):
        out["headers"] = dict(inject({{}}))
        out["current"] = current().span_id
    start_response("200 OK", [])
    return [b""]
TraceWSGI(app)({{"HTTP_TRACEPARENT": {INCOMING!r}, "HTTP_TRACESTATE": "rojo=1"}}, lambda *a: None)
span = exporter.get_finished_spans()[0]
out["span"] = f"{{span.context.span_id:016x}}"
out["trace"] = f"{{span.context.trace_id:032x}}"
out["parent"] = f"{{span.parent.span_id:016x}}"
print(json.dumps(out))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    out = json.loads(result.stdout)
    assert out["trace"] == TRACE
    # The OTel span is a child of the span our middleware made for the request, whose
    # parent is the caller; the outgoing call names the OTel span.
    assert out["headers"]["traceparent"] == f"00-{TRACE}-{out['span']}-01"
    assert out["headers"]["tracestate"] == "rojo=1"
    assert out["current"] == out["span"]
    assert out["parent"] == out["ours"] and out["ours_parent"] == CALLER_SPAN
