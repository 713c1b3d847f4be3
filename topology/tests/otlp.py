"""Building OTLP requests for the ingest tests and the bench (protobuf and OTLP/JSON)."""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5


@dataclass
class S:
    """One span for a test request."""

    kind: int
    trace_id: bytes
    span_id: bytes
    parent_id: bytes = b""
    duration_ms: float = 5.0
    error: bool = False
    trace_state: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    start_ns: int = 0


def ids() -> tuple[bytes, bytes]:
    return os.urandom(16), os.urandom(8)


def call(client_ms: float = 12.0, server_ms: float = 7.0, **server: Any) -> tuple[S, S]:
    """A CLIENT span and the SERVER span it called (server's parent = client's span id)."""
    trace_id, client_id = ids()
    return (
        S(CLIENT, trace_id, client_id, os.urandom(8), client_ms),
        S(SERVER, trace_id, os.urandom(8), client_id, server_ms, **server),
    )


def protobuf(resources: list[tuple[str, str | None, list[S]]]) -> bytes:
    """resources: (service.name, deployment.environment.name or None, spans)."""
    request = ExportTraceServiceRequest()
    now = time.time_ns()
    for service, environment, spans in resources:
        rs = request.resource_spans.add()
        attr = rs.resource.attributes.add()
        attr.key, attr.value.string_value = "service.name", service
        if environment:
            attr = rs.resource.attributes.add()
            attr.key, attr.value.string_value = "deployment.environment.name", environment
        scope = rs.scope_spans.add()
        for s in spans:
            span = scope.spans.add()
            span.trace_id, span.span_id, span.parent_span_id = s.trace_id, s.span_id, s.parent_id
            span.name, span.kind = "op", s.kind
            span.start_time_unix_nano = s.start_ns or now
            span.end_time_unix_nano = span.start_time_unix_nano + int(s.duration_ms * 1e6)
            span.trace_state = s.trace_state
            if s.error:
                span.status.code = 2
            for key, value in s.attributes.items():
                kv = span.attributes.add()
                kv.key = key
                if isinstance(value, float):
                    kv.value.double_value = value
                elif isinstance(value, int):
                    kv.value.int_value = value
                else:
                    kv.value.string_value = value
    return bytes(request.SerializeToString())


def _json_value(value: Any) -> dict[str, Any]:
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"stringValue": value}


def otlp_json(
    resources: list[tuple[str, str | None, list[S]]], *, base64_ids: bool = False
) -> dict[str, Any]:
    """The OTLP/JSON form (hex ids, or base64 as protobuf's JSON mapping writes them)."""

    def encode(raw: bytes) -> str:
        return base64.b64encode(raw).decode() if base64_ids else raw.hex()

    now = time.time_ns()
    out: dict[str, Any] = {"resourceSpans": []}
    for service, environment, spans in resources:
        attributes = [{"key": "service.name", "value": {"stringValue": service}}]
        if environment:
            attributes.append(
                {"key": "deployment.environment.name", "value": {"stringValue": environment}}
            )
        items = []
        for s in spans:
            start = s.start_ns or now
            item: dict[str, Any] = {
                "traceId": encode(s.trace_id),
                "spanId": encode(s.span_id),
                "name": "op",
                "kind": s.kind,
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + int(s.duration_ms * 1e6)),
                "attributes": [
                    {"key": k, "value": _json_value(v)} for k, v in s.attributes.items()
                ],
                "status": {"code": 2} if s.error else {},
            }
            if s.parent_id:
                item["parentSpanId"] = encode(s.parent_id)
            if s.trace_state:
                item["traceState"] = s.trace_state
            items.append(item)
        out["resourceSpans"].append(
            {"resource": {"attributes": attributes}, "scopeSpans": [{"spans": items}]}
        )
    return out
