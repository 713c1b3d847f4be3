"""W3C Trace Context (`traceparent`) propagation: read it from requests, pass it on to calls.

Signalbox builds part of its dependency map from traces; a service only has to keep the
header flowing: `TraceASGI`/`TraceWSGI` take it from each incoming request (or start a
trace), and `inject(headers)` adds it to each outgoing call.
"""

from __future__ import annotations

import contextvars
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

HEADER = "traceparent"
_PARSE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
SAMPLED = 0x01


@dataclass(frozen=True)
class TraceContext:
    """A position in a trace: the trace, the current span, and the flags."""

    trace_id: str
    span_id: str
    flags: int = SAMPLED

    @property
    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def child(self) -> TraceContext:
        """A new span in the same trace (for this service's work, or a call it makes)."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags)


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
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceContext(trace_id, span_id, int(flags, 16))


_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "signalbox_trace", default=None
)


def current() -> TraceContext | None:
    return _current.get()


@contextmanager
def use(context: TraceContext) -> Iterator[TraceContext]:
    """Make `context` current for the block (a request's span)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def continue_from(header: str | None) -> TraceContext:
    """This service's span for a request carrying `header` (a new trace if none or invalid)."""
    parent = parse(header)
    return parent.child() if parent is not None else new_trace()


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add `traceparent` for an outgoing call: a child span of the current one (or a new trace)."""
    context = current()
    headers[HEADER] = (context.child() if context is not None else new_trace()).header
    return headers


class TraceASGI:
    """Makes each HTTP request's trace current while the wrapped ASGI app handles it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or []).get(HEADER.encode())
        with use(continue_from(raw.decode("latin-1") if raw else None)):
            await self.app(scope, receive, send)


class TraceWSGI:
    """Makes each request's trace current while the wrapped WSGI app handles it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        with use(continue_from(environ.get("HTTP_TRACEPARENT"))):
            return self.app(environ, start_response)
