"""OTLP trace requests (protobuf or JSON) into the few facts the edges need, per span.

Nothing else of a span is kept: the name, events, links and most attributes are read past.
A request with anything malformed (bad bytes, bad ids, wrong types) raises `Malformed` and
is refused whole, so nothing of it is stored.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

# OTLP's SpanKind and Status.StatusCode numbers (opentelemetry/proto/trace/v1/trace.proto).
KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER = 2, 3, 4, 5
STATUS_ERROR = 2
_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}

# Span attributes read: where an unpaired client call went, and sampling weights.
VIRTUAL_NODE_ATTRIBUTES = ("peer.service", "server.address", "net.peer.name", "db.system")
_WANTED = frozenset((*VIRTUAL_NODE_ATTRIBUTES, "db.name", "sampling.probability", "SampleRate"))
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_TWO_56 = float(1 << 56)


class Malformed(ValueError):
    """The request cannot be read; the message says where and why (answered 400)."""


@dataclass(slots=True)
class Span:
    """What the edges need of one CLIENT/SERVER/PRODUCER/CONSUMER span."""

    kind: int
    trace_id: bytes
    span_id: bytes
    parent_id: bytes
    start_ns: int
    duration_ms: float
    error: bool
    weight: float  # 1 / sampling probability (1.0 when the span says nothing)
    attributes: dict[str, Any]


@dataclass(slots=True)
class ResourceSpans:
    """The spans of one resource: one service (resource `service.name`) in one environment."""

    service: str
    environment: str
    spans: list[Span]
    other_spans: int  # INTERNAL/unspecified spans: valid, counted, not edges


def _weight_from_tracestate(state: str) -> float:
    """1/p for OpenTelemetry's `ot=th:<hex>` rejection threshold (probability sampling spec):
    p = 1 - th/2^56 with th right-padded to 14 hex digits; 1.0 when absent or unreadable."""
    at = state.find("ot=")
    if at < 0 or (at > 0 and state[at - 1] not in ", \t"):
        return 1.0
    value = state[at + 3 :].split(",", 1)[0]
    for part in value.split(";"):
        if part.startswith("th:"):
            digits = part[3:].strip()
            if not 1 <= len(digits) <= 14:
                return 1.0
            try:
                threshold = int(digits.ljust(14, "0"), 16)
            except ValueError:
                return 1.0
            probability = 1.0 - threshold / _TWO_56
            return 1.0 / probability if probability > 0 else 1.0
    return 1.0


def _weight(state: str, attributes: dict[str, Any]) -> float:
    if state:
        weight = _weight_from_tracestate(state)
        if weight != 1.0:
            return weight
    probability = attributes.get("sampling.probability")
    if isinstance(probability, (int, float)) and 0 < probability <= 1:
        return 1.0 / float(probability)
    rate = attributes.get("SampleRate")
    if isinstance(rate, (int, float)) and rate >= 1:
        return float(rate)
    return 1.0


def _check_ids(trace_id: bytes, span_id: bytes, parent_id: bytes, where: str) -> None:
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        raise Malformed(f"{where}: traceId must be 16 bytes, not all zero")
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        raise Malformed(f"{where}: spanId must be 8 bytes, not all zero")
    if parent_id and len(parent_id) != 8:
        raise Malformed(f"{where}: parentSpanId must be 8 bytes or empty")


# ---- protobuf ---------------------------------------------------------------------------


def _pb_value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    return getattr(value, which)


def _pb_resource(resource: Any) -> tuple[str, str]:
    service = environment = ""
    for kv in resource.attributes:
        key = kv.key
        if key == "service.name":
            service = kv.value.string_value
        elif key == "deployment.environment.name" or (
            key == "deployment.environment" and not environment
        ):
            environment = kv.value.string_value
    return service, environment


def from_protobuf(body: bytes) -> list[ResourceSpans]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as error:
        raise Malformed(f"body is not an OTLP ExportTraceServiceRequest: {error}") from None
    out: list[ResourceSpans] = []
    for r, resource_spans in enumerate(request.resource_spans):
        service, environment = _pb_resource(resource_spans.resource)
        spans: list[Span] = []
        other = 0
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for i, span in enumerate(scope_spans.spans):
                trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
                if (
                    len(trace_id) != 16
                    or len(span_id) != 8
                    or trace_id == _ZERO_TRACE
                    or span_id == _ZERO_SPAN
                    or (parent_id and len(parent_id) != 8)
                ):
                    _check_ids(
                        trace_id, span_id, parent_id,
                        f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]",
                    )  # fmt: skip
                kind = span.kind
                if kind < KIND_SERVER:
                    other += 1
                    continue
                attributes = {
                    kv.key: _pb_value(kv.value) for kv in span.attributes if kv.key in _WANTED
                }
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                spans.append(
                    Span(
                        kind,
                        trace_id,
                        span_id,
                        parent_id,
                        start,
                        max(end - start, 0) / 1e6,
                        span.status.code == STATUS_ERROR,
                        _weight(span.trace_state, attributes),
                        attributes,
                    )
                )
        out.append(ResourceSpans(service, environment, spans, other))
    return out


# ---- JSON (OTLP/JSON: lowerCamelCase names, ids in hex; base64 ids accepted too) -------


def _field(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _field(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{where}.{camel} must be a list")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{where} must be an object")
    return value


def _json_id(value: Any, size: int, where: str, name: str) -> bytes:
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise Malformed(f"{where}.{name} must be a string of hex digits")
    try:
        if len(value) == size * 2:
            return bytes.fromhex(value)
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise Malformed(f"{where}.{name} {value!r} is neither hex nor base64") from None


def _json_int(value: Any, where: str, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise Malformed(f"{where}.{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise Malformed(f"{where}.{name} must be an integer (a number or a string of digits)")


def _json_enum(value: Any, names: dict[str, int], where: str, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    raise Malformed(f"{where}.{name} {value!r} is not a known value")


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict) or not value:
        return None
    for key in ("stringValue", "boolValue", "doubleValue", "string_value", "double_value"):
        if key in value:
            return value[key]
    for key in ("intValue", "int_value"):
        if key in value:
            raw = value[key]
            try:
                return int(raw)
            except (TypeError, ValueError):
                return None
    return None


def _json_attributes(
    items: Iterable[Any], where: str, wanted: Iterable[str] | None
) -> Iterator[tuple[str, Any]]:
    keep = set(wanted) if wanted is not None else None
    for j, item in enumerate(items):
        kv = _object(item, f"{where}.attributes[{j}]")
        key = kv.get("key")
        if not isinstance(key, str):
            raise Malformed(f"{where}.attributes[{j}].key must be a string")
        if keep is None or key in keep:
            yield key, _json_value(kv.get("value"))


def from_json(body: bytes) -> list[ResourceSpans]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise Malformed(f"body is not JSON: {error}") from None
    document = _object(document, "body")
    out: list[ResourceSpans] = []
    for r, item in enumerate(_list(document, "resourceSpans", "resource_spans", "body")):
        where_r = f"resourceSpans[{r}]"
        resource_spans = _object(item, where_r)
        resource = _object(resource_spans.get("resource") or {}, f"{where_r}.resource")
        attrs = dict(
            _json_attributes(
                _list(resource, "attributes", "attributes", f"{where_r}.resource"),
                f"{where_r}.resource",
                ("service.name", "deployment.environment.name", "deployment.environment"),
            )
        )
        service = str(attrs.get("service.name") or "")
        environment = str(
            attrs.get("deployment.environment.name") or attrs.get("deployment.environment") or ""
        )
        spans: list[Span] = []
        other = 0
        for s, scope_item in enumerate(_list(resource_spans, "scopeSpans", "scope_spans", where_r)):
            where_s = f"{where_r}.scopeSpans[{s}]"
            scope_spans = _object(scope_item, where_s)
            for i, span_item in enumerate(_list(scope_spans, "spans", "spans", where_s)):
                where = f"{where_s}.spans[{i}]"
                span = _object(span_item, where)
                trace_id = _json_id(_field(span, "traceId", "trace_id"), 16, where, "traceId")
                span_id = _json_id(_field(span, "spanId", "span_id"), 8, where, "spanId")
                parent_id = _json_id(
                    _field(span, "parentSpanId", "parent_span_id"), 8, where, "parentSpanId"
                )
                _check_ids(trace_id, span_id, parent_id, where)
                kind = _json_enum(span.get("kind"), _KIND_NAMES, where, "kind")
                start = _json_int(
                    _field(span, "startTimeUnixNano", "start_time_unix_nano"),
                    where,
                    "startTimeUnixNano",
                )
                end = _json_int(
                    _field(span, "endTimeUnixNano", "end_time_unix_nano"), where, "endTimeUnixNano"
                )
                status = _object(span.get("status") or {}, f"{where}.status")
                code = _json_enum(status.get("code"), _STATUS_NAMES, f"{where}.status", "code")
                state = _field(span, "traceState", "trace_state") or ""
                if not isinstance(state, str):
                    raise Malformed(f"{where}.traceState must be a string")
                if kind < KIND_SERVER:
                    other += 1
                    continue
                attributes = dict(
                    _json_attributes(_list(span, "attributes", "attributes", where), where, _WANTED)
                )
                spans.append(
                    Span(
                        kind,
                        trace_id,
                        span_id,
                        parent_id,
                        start,
                        max(end - start, 0) / 1e6,
                        code == STATUS_ERROR,
                        _weight(state, attributes),
                        attributes,
                    )
                )
        out.append(ResourceSpans(service, environment, spans, other))
    return out
