"""The fleet's control API: list instances, inject faults, change versions, start and stop
instances, route calls through a load balancer, set the traffic rate and the previews the
traffic generator calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from fleet.errors import FleetError, error_response, read_json
from fleet.health import CONTENT_TYPE as HEALTH_CONTENT_TYPE
from fleet.traffic import PREVIEW_RPS

if TYPE_CHECKING:
    from fleet.runtime import Fleet

FLEET: web.AppKey[Fleet] = web.AppKey("control_fleet")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def control_app(fleet: Fleet) -> web.Application:
    app = web.Application(middlewares=[fleet_errors])
    app[FLEET] = fleet
    r = app.router
    r.add_get("/health", fleet_health)
    r.add_get("/fleet/plan", show_plan)
    r.add_get("/fleet/instances", list_instances)
    r.add_post("/fleet/instances", start_instance)
    r.add_get("/fleet/instances/{id}", show_instance)
    r.add_delete("/fleet/instances/{id}", stop_instance)
    r.add_post("/fleet/instances/{id}/lifecycle", drain_notice)
    r.add_post("/fleet/instances/{id}/faults", set_faults)
    r.add_post("/fleet/instances/{id}/version", set_version)
    r.add_post("/fleet/instances/{id}/circuits/{name}", set_circuit)
    r.add_get("/fleet/externals", list_externals)
    r.add_post("/fleet/externals/{slug}/faults", set_external_faults)
    r.add_get("/fleet/routes", list_routes)
    r.add_put("/fleet/routes/{service}/{environment}", set_route)
    r.add_delete("/fleet/routes/{service}/{environment}", clear_route)
    r.add_get("/fleet/traffic", show_traffic)
    r.add_post("/fleet/traffic", set_traffic)
    r.add_put("/fleet/previews/{service}/{environment}", set_preview)
    r.add_delete("/fleet/previews/{service}/{environment}", clear_preview)
    return app


@web.middleware
async def fleet_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except FleetError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(FleetError(exc.status, exc.reason))


async def fleet_health(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    listening = sum(1 for i in fleet.instances.values() if i.listening)
    document = {
        "status": "pass",
        "serviceId": "signalbox-fleet",
        "description": "the Signalbox demo fleet",
        "checks": {"instances:listening": [{
            "componentType": "system",
            "observedValue": listening,
            "status": "pass",
            "output": f"{listening} of {len(fleet.instances)} instances listening",
        }]},
    }
    return web.json_response(document, content_type=HEALTH_CONTENT_TYPE)


async def show_plan(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    fleet.plan.instances = [i.spec for i in fleet.instances.values()]
    return web.json_response(fleet.plan.to_json())


async def list_instances(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    service = request.query.get("service")
    environment = request.query.get("environment")
    instances = [
        i.to_json() for i in fleet.instances.values()
        if (service is None or i.spec.service == service)
        and (environment is None or i.spec.environment == environment)
    ]
    return web.json_response({"count": len(instances), "instances": instances})


async def show_instance(request: web.Request) -> web.Response:
    return web.json_response(request.app[FLEET].get(request.match_info["id"]).to_json())


async def start_instance(request: web.Request) -> web.Response:
    body = _object(await read_json(request))
    missing = {k: ["is required"] for k in ("service", "environment", "version") if k not in body}
    unknown = {k: ["unknown field"] for k in body.keys() - {"service", "environment", "version",
                                                          "zone"}}
    if missing or unknown:
        raise FleetError(400, "cannot start that instance", {**missing, **unknown})
    instance = await request.app[FLEET].add_instance(
        str(body["service"]), str(body["environment"]), body["version"], body.get("zone"),
    )
    return web.json_response(instance.to_json(), status=201)


async def stop_instance(request: web.Request) -> web.Response:
    """Stop an instance; `?grace=SECONDS` lets its requests in flight finish first."""
    instance_id = request.match_info["id"]
    raw = request.query.get("grace", "0")
    try:
        grace = float(raw)
        if not 0 <= grace <= 3600:
            raise ValueError
    except ValueError:
        raise FleetError(400, "bad grace", {"grace": ["must be seconds from 0 to 3600"]}) from None
    await request.app[FLEET].remove_instance(instance_id, grace=grace)
    return web.json_response({"id": instance_id, "stopped": True})


async def drain_notice(request: web.Request) -> web.Response:
    """The control plane's drain notice (the webhook form of the scale-in handshake)."""
    fleet = request.app[FLEET]
    instance = fleet.tell_draining(request.match_info["id"], await read_json(request))
    return web.json_response(instance.to_json(), status=202)


async def set_faults(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    instance = await fleet.set_faults(request.match_info["id"], await read_json(request))
    return web.json_response(instance.to_json())


async def set_version(request: web.Request) -> web.Response:
    body = _object(await read_json(request))
    instance = request.app[FLEET].set_version(request.match_info["id"], body.get("version"))
    return web.json_response(instance.to_json())


async def set_circuit(request: web.Request) -> web.Response:
    body = _object(await read_json(request))
    instance = request.app[FLEET].set_circuit(
        request.match_info["id"], request.match_info["name"], body.get("state"),
    )
    return web.json_response(instance.to_json())


async def list_externals(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    return web.json_response({
        "externals": [
            {"slug": slug, "faults": faults.to_json()}
            for slug, faults in sorted(fleet.external_faults.items())
        ],
    })


async def set_external_faults(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    faults = request.app[FLEET].set_external_faults(slug, await read_json(request))
    return web.json_response({"slug": slug, "faults": faults.to_json()})


async def list_routes(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    return web.json_response({
        "routes": [
            {"service": s, "environment": e, "url": url}
            for (s, e), url in sorted(fleet.routes.items())
        ],
    })


async def set_route(request: web.Request) -> web.Response:
    body = _object(await read_json(request))
    service, environment = request.match_info["service"], request.match_info["environment"]
    request.app[FLEET].set_route(service, environment, body.get("url", ""))
    return web.json_response({"service": service, "environment": environment,
                              "url": body.get("url")})


async def clear_route(request: web.Request) -> web.Response:
    service, environment = request.match_info["service"], request.match_info["environment"]
    request.app[FLEET].set_route(service, environment, None)
    return web.json_response({"service": service, "environment": environment, "url": None})


async def show_traffic(request: web.Request) -> web.Response:
    return web.json_response(request.app[FLEET].traffic.to_json())


async def set_traffic(request: web.Request) -> web.Response:
    body = _object(await read_json(request))
    rps = body.get("rps")
    if isinstance(rps, bool) or not isinstance(rps, int | float) or not 0 <= rps <= 10_000:
        raise FleetError(400, "bad traffic rate", {"rps": ["must be a number from 0 to 10000"]})
    traffic = request.app[FLEET].traffic
    traffic.set_rate(float(rps))
    return web.json_response(traffic.to_json())


async def set_preview(request: web.Request) -> web.Response:
    body = _object(await read_json(request))
    unknown = {k: ["unknown field"] for k in body.keys() - {"url", "rps"}}
    if unknown:
        raise FleetError(400, "bad preview", unknown)
    service, environment = request.match_info["service"], request.match_info["environment"]
    preview = request.app[FLEET].traffic.set_preview(
        service, environment, body.get("url") or "", body.get("rps", PREVIEW_RPS),
    )
    assert preview is not None
    return web.json_response({"service": service, "environment": environment,
                              **preview.to_json()})


async def clear_preview(request: web.Request) -> web.Response:
    service, environment = request.match_info["service"], request.match_info["environment"]
    request.app[FLEET].traffic.set_preview(service, environment, None)
    return web.json_response({"service": service, "environment": environment, "url": None})


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FleetError(400, "expected a JSON object", {"non_field_errors": ["not an object"]})
    return body
