"""W3C traceparent: read from requests, handed on to outgoing calls in the same trace."""

from __future__ import annotations

from typing import Any

from signalbox_client import TraceWSGI, inject
from signalbox_client.tracing import current, parse

INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_it_parses_valid_headers_and_refuses_invalid_ones() -> None:
    context = parse(INCOMING)
    assert context is not None and context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
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


def test_an_outgoing_call_continues_the_incoming_trace() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["headers"] = inject({})
        seen["context"] = current()
        start_response("200 OK", [])
        return [b""]

    TraceWSGI(app)({"HTTP_TRACEPARENT": INCOMING}, lambda *a: None)
    outgoing = parse(seen["headers"]["traceparent"])
    assert outgoing is not None
    assert outgoing.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert outgoing.span_id not in ("00f067aa0ba902b7", seen["context"].span_id)
    assert current() is None  # nothing leaks past the request


def test_without_an_incoming_trace_a_new_one_starts() -> None:
    headers = inject({})
    assert parse(headers["traceparent"]) is not None
