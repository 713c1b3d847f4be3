"""Traces of the demo's calls: W3C Trace Context between services, and real OpenTelemetry
spans exported over OTLP/HTTP to Signalbox (`--otlp-url`), which derives the dependency
map's edges from them.

Each (service, environment) is one OpenTelemetry resource (`service.name`,
`deployment.environment.name`) with its own BatchSpanProcessor and OTLP/HTTP exporter
sending with its team's report token (the file `--report-tokens` names, read again as it
changes). Requests get a SERVER span, calls to other services a CLIENT span whose id the
callee's SERVER span names as parent, and calls to external APIs a CLIENT span with
`peer.service` set to the dependency's slug (nothing answers them in traces).
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

log = logging.getLogger(__name__)
# The SDK's exporter logs every retry of every instance's batch (dozens of lines a second
# while the web process starts); _TeamTokenExporter says it once, in its own words.
logging.getLogger("opentelemetry.exporter.otlp.common.http").setLevel(logging.CRITICAL)

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16


@dataclass(frozen=True)
class Span:
    """The server span of one request: its trace, its own id, and its caller's span.

    `otel` is the OpenTelemetry span behind it when the fleet exports traces."""

    trace_id: str
    span_id: str
    parent_id: str | None
    flags: str = "01"
    tracestate: str | None = None
    otel: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Span:
        """Continue the caller's trace when its traceparent is valid, else start one."""
        match = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
        if match and match[1] != _INVALID_TRACE and match[2] != _INVALID_SPAN:
            return cls(match[1], _span_id(), match[2], match[3], headers.get("tracestate"))
        return cls(secrets.token_hex(16), _span_id(), None)

    def child_headers(self, span_id: str | None = None) -> dict[str, str]:
        """Headers for an outgoing call: a client span in the same trace (`span_id`, or a
        new id when the call has no span of its own)."""
        headers = {"traceparent": f"00-{self.trace_id}-{span_id or _span_id()}-{self.flags}"}
        if self.tracestate:
            headers["tracestate"] = self.tracestate
        return headers


def _span_id() -> str:
    return secrets.token_hex(8)


class _TeamTokenExporter:
    """An OTLP/HTTP span exporter that sends with the team's current report token."""

    def __init__(self, url: str, team: str, tokens: Callable[[], dict[str, str]]) -> None:
        self.url, self.team, self.tokens = url, team, tokens
        self._token = ""
        self._inner: Any = None
        self._warned = ""

    def _exporter(self) -> Any:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        token = self.tokens().get(self.team, "")
        if token != self._token or self._inner is None:
            if self._inner is not None:
                self._inner.shutdown()
            self._token = token
            self._inner = OTLPSpanExporter(
                endpoint=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=5
            )
        return self._inner

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        if not self.tokens().get(self.team):
            self._warn(f"no report token for team {self.team!r} yet: spans dropped")
            return SpanExportResult.FAILURE
        result = self._exporter().export(spans)
        if result is not SpanExportResult.SUCCESS:
            self._warn(f"exporting spans to {self.url} failed (is the web process up?)")
        else:
            self._warned = ""
        return result

    def _warn(self, problem: str) -> None:
        if problem != self._warned:
            log.warning("traces: %s", problem)
        self._warned = problem

    def shutdown(self) -> None:
        if self._inner is not None:
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Tracing:
    """OpenTelemetry providers per (service, environment), made on first use."""

    def __init__(
        self, url: str, tokens: Callable[[], dict[str, str]], team_of: Mapping[str, str]
    ) -> None:
        self.url = url
        self.tokens = tokens
        self.team_of = dict(team_of)
        self._providers: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def tracer(self, service: str, environment: str) -> Any:
        key = (service, environment)
        provider = self._providers.get(key)
        if provider is None:
            with self._lock:
                provider = self._providers.get(key)
                if provider is None:
                    provider = self._providers[key] = self._provider(service, environment)
        return provider.get_tracer("signalbox-demo-fleet")

    def _provider(self, service: str, environment: str) -> Any:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create(
            {"service.name": service, "deployment.environment.name": environment}
        )
        provider = TracerProvider(resource=resource)
        exporter = _TeamTokenExporter(self.url, self.team_of.get(service, ""), self.tokens)
        provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=1000)  # type: ignore[arg-type]
        )
        return provider

    def start_server(self, service: str, environment: str, span: Span, name: str) -> Span:
        """The request's SERVER span, child of the caller's span; `span` with its ids."""
        from opentelemetry import trace

        parent = None
        if span.parent_id is not None:
            remote = trace.SpanContext(
                int(span.trace_id, 16),
                int(span.parent_id, 16),
                is_remote=True,
                trace_flags=trace.TraceFlags(int(span.flags, 16)),
                trace_state=trace.TraceState.from_header([span.tracestate])
                if span.tracestate
                else None,
            )
            parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        otel = self.tracer(service, environment).start_span(
            name, context=parent, kind=trace.SpanKind.SERVER
        )
        context = otel.get_span_context()
        return replace(
            span,
            trace_id=f"{context.trace_id:032x}",
            span_id=f"{context.span_id:016x}",
            otel=otel,
        )

    def start_client(
        self, service: str, environment: str, parent: Span, name: str, **attributes: Any
    ) -> Any:
        """A CLIENT span for a call `parent`'s request makes."""
        from opentelemetry import trace

        context = trace.set_span_in_context(parent.otel) if parent.otel is not None else None
        return self.tracer(service, environment).start_span(
            name, context=context, kind=trace.SpanKind.CLIENT, attributes=attributes
        )

    def shutdown(self) -> None:
        """Send what is queued and stop the exporters' threads."""
        for provider in list(self._providers.values()):
            provider.shutdown()
        self._providers.clear()


def end(otel: Any, failed: bool, description: str = "") -> None:
    """End an OpenTelemetry span, status ERROR when the work failed."""
    if otel is None:
        return
    from opentelemetry.trace import Status, StatusCode

    if failed:
        otel.set_status(Status(StatusCode.ERROR, description or None))
    otel.end()
