"""What every instance serves: /health, /, /version, /api/..., /metrics, /hystrix.stream,
/actuator/loggers (fleet/actuator.py) and /_fault. One application for all instances; the
local port says which one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from fleet import actuator
from fleet.errors import FleetError, error_response, read_json
from fleet.exposition import PROMETHEUS_CONTENT_TYPE, hystrix_command, prometheus
from fleet.faults import BAD_VERSION_LATENCY_MS, is_bad_version
from fleet.health import CONTENT_TYPE as HEALTH_CONTENT_TYPE
from fleet.health import health_document
from fleet.instance import Instance
from fleet.tracing import Span, end

if TYPE_CHECKING:
    from fleet.runtime import Fleet

FLEET: web.AppKey[Fleet] = web.AppKey("fleet")
INSTANCE: web.RequestKey[Instance] = web.RequestKey("instance")
FAULT_PATH = "/_fault"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def instance_app(fleet: Fleet) -> web.Application:
    app = web.Application(middlewares=[resolve_instance])
    app[FLEET] = fleet
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/version", version)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/hystrix.stream", hystrix_stream)
    app.router.add_get(FAULT_PATH, show_faults)
    app.router.add_post(FAULT_PATH, set_faults)
    app.router.add_route("*", "/api/{endpoint:.*}", work)
    actuator.add_routes(app, lambda request: request[INSTANCE])
    return app


@web.middleware
async def resolve_instance(request: web.Request, handler: Handler) -> web.StreamResponse:
    fleet = request.app[FLEET]
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    instance = fleet.by_port.get(sockname[1]) if sockname else None
    if instance is None:
        return web.json_response({"error": "this instance has been stopped"}, status=503)
    request[INSTANCE] = instance
    # The fault endpoint always answers, so a hung or slowed instance can be repaired.
    if request.path != FAULT_PATH:
        if not instance.answering.is_set():
            await instance.answering.wait()
        if instance.faults.latency_ms:
            await asyncio.sleep(instance.faults.latency_ms / 1000)
    instance.in_flight += 1
    try:
        return await handler(request)
    finally:
        instance.in_flight -= 1


async def index(request: web.Request) -> web.Response:
    instance = request[INSTANCE]
    spec = instance.spec
    return web.json_response({
        "service": spec.service,
        "instance": spec.id,
        "environment": spec.environment,
        "zone": spec.zone,
        "version": spec.version,
        "endpoints": ["/health", "/version", "/api/work", "/metrics", "/hystrix.stream",
                      FAULT_PATH],
    })


async def health(request: web.Request) -> web.Response:
    instance = request[INSTANCE]
    service = request.app[FLEET].plan.service(instance.spec.service)
    assert service is not None
    document, status = health_document(instance, service)
    return web.Response(
        text=json.dumps(document),
        status=status,
        content_type=HEALTH_CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )


async def version(request: web.Request) -> web.Response:
    instance = request[INSTANCE]
    return web.json_response({
        "service": instance.spec.service,
        "instance": instance.id,
        "version": instance.version,
    })


async def work(request: web.Request) -> web.Response:
    """A business call: misbehave as faulted, then call every dependency through its
    circuit breaker, falling back (degraded) when one fails."""
    instance = request[INSTANCE]
    fleet = request.app[FLEET]
    span = Span.from_headers(request.headers)
    if fleet.tracing is not None:
        span = fleet.tracing.start_server(
            instance.spec.service, instance.spec.environment, span, "GET /api/work"
        )
    try:
        response = await _work(request, instance, fleet, span)
    except BaseException:
        end(span.otel, True, "cancelled")
        raise
    end(span.otel, response.status >= 500, f"HTTP {response.status}")
    return response


async def _work(request: web.Request, instance: Instance, fleet: Any, span: Span) -> web.Response:
    trace = {"trace_id": span.trace_id, "span_id": span.span_id, "parent_id": span.parent_id}
    if is_bad_version(instance.version):
        await asyncio.sleep(BAD_VERSION_LATENCY_MS / 1000)
    if instance.should_fail():
        instance.calls.add(error=True)
        return web.json_response(
            {"error": "internal error (injected)", "instance": instance.id, **trace},
            status=500,
        )
    dependencies = await fleet.call_dependencies(instance, span)
    instance.calls.add(error=False)
    return web.json_response({
        "service": instance.spec.service,
        "instance": instance.id,
        "version": instance.version,
        "endpoint": request.match_info["endpoint"],
        **trace,
        "degraded": not all(d["ok"] for d in dependencies.values()),
        "dependencies": dependencies,
    })


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=prometheus(request[INSTANCE]),
        headers={"Content-Type": PROMETHEUS_CONTENT_TYPE},
    )


async def hystrix_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one HystrixCommand per circuit every interval, or a ping."""
    instance = request[INSTANCE]
    fleet = request.app[FLEET]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream;charset=UTF-8",
        "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
    })
    await response.prepare(request)
    try:
        while not fleet.closing and instance.listening:
            if instance.breakers:
                events = "".join(
                    f"data: {json.dumps(hystrix_command(instance, b))}\n\n"
                    for _, b in sorted(instance.breakers.items())
                )
            else:
                events = "ping: \n\n"
            await response.write(events.encode())
            await asyncio.sleep(fleet.hystrix_interval)
    except ConnectionResetError:
        pass  # the reader went away: nothing to clean up
    return response


async def show_faults(request: web.Request) -> web.Response:
    return web.json_response(request[INSTANCE].to_json())


async def set_faults(request: web.Request) -> web.Response:
    try:
        body: Any = await read_json(request)
        instance = await request.app[FLEET].set_faults(
            request[INSTANCE].id, body, spare=request.transport,
        )
    except FleetError as exc:
        return error_response(exc)
    response = web.json_response(instance.to_json())
    if not instance.listening:
        response.force_close()  # this connection is the last one a downed instance answers
    return response
