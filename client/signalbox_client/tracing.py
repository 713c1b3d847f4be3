"""Trace context propagation: read it from requests, pass it on to calls.

Signalbox builds part of its dependency map from traces; a service only has to keep the
context flowing: `TraceASGI`/`TraceWSGI` take it from each incoming request (or start a
trace), and `inject(headers)` adds it to each outgoing call.

- W3C Trace Context: `traceparent`, and `tracestate` passed on verbatim (within the spec's
  limits: at most 32 members, 512 characters; a malformed `tracestate` is dropped).
- B3, read only: the single `b3` header (`{trace}-{span}[-{sampled}[-{parent}]]`, or just
  `0`/`1`/`d`) and the multi headers (`X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`,
  `X-B3-Flags`); 64-bit trace ids are left-padded to 128 bits. Outgoing calls carry W3C.
- The incoming span id is the parent of this service's span, and this service's span id is
  the parent that outgoing calls carry, so the links between services are kept.
- Where the service uses OpenTelemetry (a real TracerProvider, or a propagator other than
  the default one, is configured), reading and writing headers is left to
  `opentelemetry.propagate.extract/inject`, so the two never disagree.
"""

from __future__ import annotations

import contextvars
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

HEADER = "traceparent"
STATE_HEADER = "tracestate"
_PARSE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
SAMPLED = 0x01

# tracestate (W3C Trace Context, section 3.3): at most 32 members, and 512 characters are
# what every vendor must pass on; longer lists are cut, entries over 128 characters first.
STATE_MAX_MEMBERS = 32
STATE_MAX_CHARS = 512
_STATE_LONG_MEMBER = 128
_STATE_KEY = re.compile(
    r"^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$"
)
_STATE_VALUE = re.compile(r"^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$")

_HEX = re.compile(r"^[0-9a-f]+$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True)
class TraceContext:
    """A position in a trace: the trace, the current span, its parent, flags and tracestate."""

    trace_id: str
    span_id: str
    flags: int = SAMPLED
    parent_id: str | None = None
    tracestate: str = ""

    @property
    def header(self) -> str:
        """The `traceparent` value naming this span (as the parent of a call it makes)."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def headers(self) -> dict[str, str]:
        """`traceparent`, and `tracestate` when there is one, for a call from this span."""
        out = {HEADER: self.header}
        if self.tracestate:
            out[STATE_HEADER] = self.tracestate
        return out

    def child(self) -> TraceContext:
        """A new span in the same trace whose parent is this one (same flags and state)."""
        return TraceContext(
            self.trace_id, secrets.token_hex(8), self.flags, self.span_id, self.tracestate
        )


def new_trace() -> TraceContext:
    return TraceContext(secrets.token_hex(16), secrets.token_hex(8))


def parse(value: str | None) -> TraceContext | None:
    """A `traceparent` header, or None when it is missing or invalid (then start a new trace).

    As the spec asks: version ff and all-zero ids are invalid; a higher version is read
    by its first four fields; uppercase hex is invalid.
    """
    if not value:
        return None
    match = _PARSE.match(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, int(flags, 16))


def parse_tracestate(value: str | Iterable[str] | None) -> str:
    """The `tracestate` to pass on: verbatim when valid, '' when malformed.

    Several header lines are joined with ','. More than 32 members or a duplicate key make
    the whole header invalid (the spec says not to pass on what cannot be parsed); past 512
    characters members over 128 characters go first, then members from the end.
    """
    if value is None:
        return ""
    raw = value if isinstance(value, str) else ",".join(value)
    members: list[str] = []
    keys: set[str] = set()
    for part in raw.split(","):
        member = part.strip(" \t")
        if not member:
            continue  # empty list members are allowed and dropped
        key, eq, val = member.partition("=")
        if not eq or not _STATE_KEY.match(key) or not _STATE_VALUE.match(val) or key in keys:
            return ""
        keys.add(key)
        members.append(member)
    if len(members) > STATE_MAX_MEMBERS:
        return ""
    if not members:
        return ""
    if len(raw.strip(" \t")) <= STATE_MAX_CHARS:
        return raw.strip(" \t")  # verbatim
    while len(",".join(members)) > STATE_MAX_CHARS:
        longest = next((m for m in members if len(m) > _STATE_LONG_MEMBER), None)
        members.remove(longest) if longest is not None else members.pop()
    return ",".join(members)


def _b3_ids(trace_id: str, span_id: str) -> tuple[str, str] | None:
    trace_id, span_id = trace_id.strip().lower(), span_id.strip().lower()
    if len(trace_id) not in (16, 32) or len(span_id) != 16:
        return None
    if not _HEX.match(trace_id) or not _HEX.match(span_id):
        return None
    trace_id = trace_id.rjust(32, "0")
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id


def _b3_flags(sampled: str | None, debug: str | None = None) -> int | None:
    """B3 sampling state as W3C flags; None means 'deferred' (sampled, as W3C has no such)."""
    if debug is not None and debug.strip() == "1":
        return SAMPLED
    if sampled is None:
        return None
    s = sampled.strip().lower()
    if s in ("1", "d", "true"):
        return SAMPLED
    if s in ("0", "false"):
        return 0
    return None


def parse_b3(value: str | None) -> TraceContext | None:
    """The single `b3` header: `{trace}-{span}[-{sampled}[-{parent}]]`; a bare `0`/`1`/`d`
    carries only a sampling decision and no ids, so it starts nothing to continue."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 2 or len(parts) > 4:
        return None
    ids = _b3_ids(parts[0], parts[1])
    if ids is None:
        return None
    flags = _b3_flags(parts[2]) if len(parts) > 2 else None
    if len(parts) > 2 and flags is None and parts[2].strip().lower() not in ("",):
        return None
    if len(parts) == 4 and (len(parts[3]) != 16 or not _HEX.match(parts[3].lower())):
        return None
    return TraceContext(ids[0], ids[1], SAMPLED if flags is None else flags)


def _b3_denied(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("0", "false")


def extract(headers: Mapping[str, str]) -> TraceContext | None:
    """The caller's span from request headers (lowercase names): W3C first, then B3 single,
    then B3 multi; None when there is none (or it is invalid)."""
    parent = parse(headers.get(HEADER))
    if parent is not None:
        state = parse_tracestate(headers.get(STATE_HEADER))
        return replace(parent, tracestate=state) if state else parent
    single = headers.get("b3")
    if single is not None:
        context = parse_b3(single)
        if context is not None:
            return context
    trace_id, span_id = headers.get("x-b3-traceid"), headers.get("x-b3-spanid")
    if trace_id and span_id:
        ids = _b3_ids(trace_id, span_id)
        if ids is not None:
            flags = _b3_flags(headers.get("x-b3-sampled"), headers.get("x-b3-flags"))
            return TraceContext(ids[0], ids[1], SAMPLED if flags is None else flags)
    return None


def _sampling_only(headers: Mapping[str, str]) -> int:
    """Flags for a new trace: unsampled when B3 said `b3: 0` / `X-B3-Sampled: 0`."""
    if _b3_denied(headers.get("b3")) or _b3_denied(headers.get("x-b3-sampled")):
        return 0
    return SAMPLED


# ---- OpenTelemetry, when the service uses it --------------------------------------------


def _otel_active() -> bool:
    """True when opentelemetry-api is importable and configured for real: a TracerProvider
    other than the API's proxy/no-op one, or a global propagator other than the default."""
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        return False
    provider = trace.get_tracer_provider()
    if not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return True
    textmap = propagate.get_global_textmap()
    return not _is_default_textmap(textmap)


def _is_default_textmap(textmap: Any) -> bool:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not isinstance(textmap, CompositePropagator):
        return False
    kinds = [type(p) for p in getattr(textmap, "_propagators", [])]
    return kinds in (
        [TraceContextTextMapPropagator, W3CBaggagePropagator],
        [TraceContextTextMapPropagator],
    )


def _from_otel_span_context(span_context: Any) -> TraceContext | None:
    if not span_context.is_valid:
        return None
    state = span_context.trace_state.to_header() if span_context.trace_state else ""
    return TraceContext(
        f"{span_context.trace_id:032x}",
        f"{span_context.span_id:016x}",
        int(span_context.trace_flags),
        None,
        state,
    )


def _otel_current() -> TraceContext | None:
    from opentelemetry import trace

    return _from_otel_span_context(trace.get_current_span().get_span_context())


# ---- this service's span ----------------------------------------------------------------

_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "signalbox_trace", default=None
)


def current() -> TraceContext | None:
    """This request's span: the OpenTelemetry span when one is active, else ours."""
    if _otel_active():
        span = _otel_current()
        ours = _current.get()
        if span is not None and (ours is None or ours.span_id != span.span_id):
            return span
    return _current.get()


@contextmanager
def use(context: TraceContext) -> Iterator[TraceContext]:
    """Make `context` current for the block (a request's span)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def continue_from(header: str | None, tracestate: str | None = None) -> TraceContext:
    """This service's span for a request carrying `traceparent` `header` (and `tracestate`):
    a child of the caller's span, or a new trace if none or invalid."""
    headers = {HEADER: header} if header else {}
    if tracestate:
        headers[STATE_HEADER] = tracestate
    return continue_from_headers(headers)


def continue_from_headers(headers: Mapping[str, str]) -> TraceContext:
    """This service's span for a request with these headers (lowercase names)."""
    parent = extract(headers)
    if parent is not None:
        return parent.child()
    return replace(new_trace(), flags=_sampling_only(headers))


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add trace headers for an outgoing call from the current span (or a new trace).

    The call carries this span's id as its parent, so the server it reaches links to us.
    """
    if _otel_active():
        from opentelemetry import propagate

        if _otel_current() is None and (ours := _current.get()) is not None:
            propagate.inject(headers, context=_otel_context_for(ours))
        else:
            propagate.inject(headers)
        return headers
    context = _current.get()
    for name, value in (context if context is not None else new_trace()).headers().items():
        headers[name] = value
    return headers


def _otel_context_for(span: TraceContext, parent: Any = None) -> Any:
    """An OpenTelemetry Context whose current span is `span` (not recording: ours)."""
    from opentelemetry import trace

    span_context = trace.SpanContext(
        int(span.trace_id, 16),
        int(span.span_id, 16),
        is_remote=False,
        trace_flags=trace.TraceFlags(span.flags),
        trace_state=trace.TraceState.from_header([span.tracestate] if span.tracestate else []),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context), parent)


@contextmanager
def _request(headers: Mapping[str, str]) -> Iterator[TraceContext]:
    if _otel_active():
        from opentelemetry import context as otel_context
        from opentelemetry import propagate

        active = _otel_current()
        if active is not None:
            # An OpenTelemetry instrumentation outside us already made the server span.
            with use(active) as span:
                yield span
            return
        extracted = propagate.extract(headers)
        from opentelemetry import trace

        remote = _from_otel_span_context(trace.get_current_span(extracted).get_span_context())
        ours = remote.child() if remote is not None else continue_from_headers(headers)
        token = otel_context.attach(_otel_context_for(ours, extracted))
        try:
            with use(ours) as span:
                yield span
        finally:
            otel_context.detach(token)
        return
    with use(continue_from_headers(headers)) as span:
        yield span


_ASGI_NAMES = frozenset(
    {b"traceparent", b"tracestate", b"b3", b"x-b3-traceid", b"x-b3-spanid",
     b"x-b3-parentspanid", b"x-b3-sampled", b"x-b3-flags"}
)  # fmt: skip


class TraceASGI:
    """Makes each HTTP request's trace current while the wrapped ASGI app handles it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope.get("headers") or []:
            lower = name.lower()
            if lower in _ASGI_NAMES:
                key = lower.decode("latin-1")
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]},{text}" if key in headers else text
        with _request(headers):
            await self.app(scope, receive, send)


class TraceWSGI:
    """Makes each request's trace current while the wrapped WSGI app handles it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        headers = {
            name.decode(): environ[key]
            for name in _ASGI_NAMES
            if (key := "HTTP_" + name.decode().upper().replace("-", "_")) in environ
        }
        with _request(headers):
            return self.app(environ, start_response)
