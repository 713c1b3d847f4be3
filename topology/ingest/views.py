"""`POST /v1/traces`: OTLP/HTTP trace export (the path every OTLP exporter posts to).

Status codes as the OTLP/HTTP spec gives them: 200 with an ExportTraceServiceResponse (its
partial_success counts the spans refused for the token), 400 for what no retry can fix
(the message says what), 401 without a valid token, 413 over SIGNALBOX_OTLP_MAX_BYTES
(checked after gzip too), 429 with Retry-After past SIGNALBOX_OTLP_MAX_IN_FLIGHT requests at
once in this process, 503 with Retry-After when the database or Redis cannot be reached.
The response is in the request's encoding (protobuf or JSON).
"""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from redis.exceptions import RedisError

from catalog.models import ApiToken
from topology.ingest import metrics
from topology.ingest.decode import Malformed, ResourceSpans, from_json, from_protobuf
from topology.ingest.service import Outcome, ingest

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
RETRY_AFTER_BUSY = 1
RETRY_AFTER_DOWN = 5
# google.rpc.Code values the OTLP spec has errors carry.
_INVALID_ARGUMENT, _UNAUTHENTICATED, _RESOURCE_EXHAUSTED, _UNAVAILABLE = 3, 16, 8, 14

_in_flight = 0  # OTLP requests this process is working on (one event loop: no lock)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _status_body(kind: str, code: int, message: str) -> bytes:
    """A google.rpc.Status (code, message), the error body OTLP/HTTP specifies."""
    if kind == JSON:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _error(
    kind: str, status: int, code: int, message: str, retry_after: int | None = None
) -> HttpResponse:
    metrics.REQUESTS.labels(str(status)).inc()
    response = HttpResponse(_status_body(kind, code, message), status=status, content_type=kind)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="signalbox"'
    return response


def _success(kind: str, outcome: Outcome) -> HttpResponse:
    metrics.REQUESTS.labels("200").inc()
    if kind == JSON:
        body: dict[str, Any] = {}
        if outcome.rejected:
            body["partialSuccess"] = {
                "rejectedSpans": str(outcome.rejected),
                "errorMessage": outcome.message,
            }
        return HttpResponse(json.dumps(body).encode(), content_type=JSON)
    response = ExportTraceServiceResponse()
    if outcome.rejected:
        response.partial_success.rejected_spans = outcome.rejected
        response.partial_success.error_message = outcome.message
    return HttpResponse(response.SerializeToString(), content_type=PROTOBUF)


def _inflate(body: bytes, limit: int) -> bytes | None:
    """gunzip at most `limit` bytes; None when there would be more (a bomb or just too big)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise Malformed(f"body is not valid gzip: {error}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        return None
    if not inflater.eof:
        raise Malformed("gzip body is truncated")
    return out


class _Refusal(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def _read(request: HttpRequest, kind: str) -> list[ResourceSpans]:
    limit = settings.SIGNALBOX_OTLP_MAX_BYTES
    too_big = f"request body over {limit} bytes (SIGNALBOX_OTLP_MAX_BYTES); send smaller batches"
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise _Refusal(_error(kind, 413, _INVALID_ARGUMENT, too_big))
    body = request.read(limit + 1)  # request.body would apply DATA_UPLOAD_MAX_MEMORY_SIZE
    if len(body) > limit:
        raise _Refusal(_error(kind, 413, _INVALID_ARGUMENT, too_big))
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding == "gzip":
        inflated = _inflate(body, limit)
        if inflated is None:
            raise _Refusal(_error(kind, 413, _INVALID_ARGUMENT, too_big + " (after gzip)"))
        body = inflated
    elif encoding not in ("", "identity"):
        raise Malformed(f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    return from_json(body) if kind == JSON else from_protobuf(body)


def _authenticate(request: HttpRequest) -> ApiToken | None:
    keyword, _, value = request.headers.get("Authorization", "").partition(" ")
    if keyword.lower() not in ("bearer", "token") or not value.strip():
        return None
    token = ApiToken.find(value.strip())
    if token is not None:
        token.touch()
    return token


def _handle(request: HttpRequest, kind: str) -> HttpResponse:
    try:
        token = _authenticate(request)
        if token is None:
            return _error(
                kind, 401, _UNAUTHENTICATED,
                "send a Signalbox token with the report scope: Authorization: Bearer sbx_...",
            )  # fmt: skip
        try:
            resources = _read(request, kind)
        except _Refusal as refusal:
            return refusal.response
        except Malformed as error:
            return _error(kind, 400, _INVALID_ARGUMENT, str(error))
        outcome = ingest(resources, token)
    except (DatabaseError, RedisError) as error:
        logger.warning("OTLP ingest unavailable: %s", error)
        return _error(
            kind, 503, _UNAVAILABLE, "Signalbox cannot store spans right now; retry",
            retry_after=RETRY_AFTER_DOWN,
        )  # fmt: skip
    return _success(kind, outcome)


def _handle_and_release(request: HttpRequest, kind: str) -> HttpResponse:
    try:
        return _handle(request, kind)
    finally:
        connections.close_all()  # this thread's connection, back to the pool


# With a connection pool (SIGNALBOX_DB_POOL_SIZE, as the Procfile runs the web process)
# exports are worked on in several threads: one decodes while another waits for PostgreSQL
# or Redis, and each takes a pooled connection for the request only. Without a pool each
# thread would open a connection per request, so they share Django's one thread.
_handle_pooled = sync_to_async(_handle_and_release, thread_sensitive=False)
_handle_shared = sync_to_async(_handle, thread_sensitive=True)


def _handler() -> Any:
    return _handle_pooled if settings.SIGNALBOX_DB_POOL_SIZE else _handle_shared


@csrf_exempt
async def traces(request: HttpRequest) -> HttpResponse:
    global _in_flight
    content_type = request.content_type or ""
    kind = content_type if content_type in (PROTOBUF, JSON) else PROTOBUF
    if request.method != "POST":
        refused = _error(kind, 405, _INVALID_ARGUMENT, "OTLP export is POST /v1/traces")
        refused["Allow"] = "POST"
        return refused
    if content_type not in (PROTOBUF, JSON):
        return _error(
            PROTOBUF, 400, _INVALID_ARGUMENT,
            f"Content-Type {content_type or '(none)'!r} is not OTLP; use {PROTOBUF} or {JSON}",
        )  # fmt: skip
    if _in_flight >= settings.SIGNALBOX_OTLP_MAX_IN_FLIGHT:
        return _error(
            kind, 429, _RESOURCE_EXHAUSTED,
            "too many trace exports at once; retry after the Retry-After seconds",
            retry_after=RETRY_AFTER_BUSY,
        )  # fmt: skip
    _in_flight += 1
    try:
        response: HttpResponse = await _handler()(request, kind)
        return response
    finally:
        _in_flight -= 1
