"""W3C Trace Context (`traceparent`) for the demo's calls between services."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16


@dataclass(frozen=True)
class Span:
    """The server span of one request: its trace, its own id, and its caller's span."""

    trace_id: str
    span_id: str
    parent_id: str | None
    flags: str = "01"
    tracestate: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Span:
        """Continue the caller's trace when its traceparent is valid, else start one."""
        match = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
        if match and match[1] != _INVALID_TRACE and match[2] != _INVALID_SPAN:
            return cls(match[1], _span_id(), match[2], match[3], headers.get("tracestate"))
        return cls(secrets.token_hex(16), _span_id(), None)

    def child_headers(self) -> dict[str, str]:
        """Headers for an outgoing call: a new client span in the same trace."""
        headers = {"traceparent": f"00-{self.trace_id}-{_span_id()}-{self.flags}"}
        if self.tracestate:
            headers["tracestate"] = self.tracestate
        return headers


def _span_id() -> str:
    return secrets.token_hex(8)
