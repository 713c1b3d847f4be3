"""A vendor's status page for the demo fleet: `/api/v2/summary.json` in Atlassian
Statuspage's shape (page, components, incidents, scheduled_maintenances, status), with
ETag / Last-Modified and 304s, a control API to change it (tests and demos), and the
vendor's own API endpoint (`GET /v1/ping`) for Signalbox's probe. Loopback only.

    python -m fleet statuspage --port 8950 --name Stripe --components API,Checkout,Webhooks

Control (JSON bodies):
    POST /control/components/<id or name>  {"status": "major_outage"}
    POST /control/incidents                {"name", "impact", "status", "components": [...]}
    POST /control/incidents/<id>/resolve
    POST /control/maintenances             {"name", "status", "components": [...]}
    POST /control/api                      {"status": 503}  (what GET /v1/ping answers)
    POST /control/page                     {"status": 503}  (summary.json fails; 200 undoes)
    POST /control/reset
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from fleet.errors import FleetError, error_response, read_json

COMPONENT_STATUSES = (
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance",
)  # fmt: skip
INCIDENT_STATUSES = ("investigating", "identified", "monitoring")
IMPACTS = ("none", "minor", "major", "critical")
MAINTENANCE_STATUSES = ("scheduled", "in_progress", "verifying")
# Statuspage's overall indicator from the worst component, and its words.
INDICATOR_OF = {
    "major_outage": "critical", "partial_outage": "major", "degraded_performance": "minor",
}  # fmt: skip
DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
    "maintenance": "Service Under Maintenance",
}
RANK = {"none": 0, "maintenance": 0, "minor": 1, "major": 2, "critical": 3}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id() -> str:
    return secrets.token_hex(6)


@dataclass
class StatusPage:
    """The page's state; every change bumps updated_at (and so the ETag)."""

    name: str
    component_names: list[str]
    page_id: str = field(default_factory=_id)
    components: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    maintenances: list[dict[str, Any]] = field(default_factory=list)
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    api_status: int = 200
    page_status: int = 200
    base_url: str = ""

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        now = _now()
        self.components = [
            {
                "id": _id(), "name": name, "status": "operational", "created_at": now,
                "updated_at": now, "position": i + 1, "description": None, "showcase": True,
                "start_date": None, "group_id": None, "page_id": self.page_id, "group": False,
                "only_show_if_degraded": False,
            }
            for i, name in enumerate(self.component_names)
        ]  # fmt: skip
        self.incidents, self.maintenances = [], []
        self.api_status = self.page_status = 200
        self.touch()

    def touch(self) -> None:
        self.updated_at = datetime.now(UTC)

    def component(self, key: str) -> dict[str, Any]:
        for c in self.components:
            if key in (c["id"], c["name"]) or key.lower() == c["name"].lower():
                return c
        names = ", ".join(c["name"] for c in self.components)
        raise FleetError(404, f"no component {key!r}; this page has {names}")

    def indicator(self) -> str:
        worst = "none"
        for c in self.components:
            level = INDICATOR_OF.get(c["status"], "none")
            if RANK[level] > RANK[worst]:
                worst = level
        for incident in self.incidents:
            if RANK.get(incident["impact"], 0) > RANK[worst]:
                worst = incident["impact"]
        if worst == "none" and (
            any(c["status"] == "under_maintenance" for c in self.components)
            or any(m["status"] == "in_progress" for m in self.maintenances)
        ):
            return "maintenance"
        return worst

    def summary(self) -> dict[str, Any]:
        indicator = self.indicator()
        return {
            "page": {
                "id": self.page_id,
                "name": self.name,
                "url": self.base_url,
                "time_zone": "Etc/UTC",
                "updated_at": self.updated_at.isoformat(timespec="milliseconds"),
            },
            "components": self.components,
            "incidents": self.incidents,
            "scheduled_maintenances": self.maintenances,
            "status": {"indicator": indicator, "description": DESCRIPTIONS[indicator]},
        }

    def _event(
        self, body: dict[str, Any], statuses: tuple[str, ...], default: str
    ) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise FleetError(400, "name is required", {"name": ["a non-empty string"]})
        status = body.get("status", default)
        if status not in statuses:
            raise FleetError(400, f"status must be one of {', '.join(statuses)}",
                             {"status": [f"one of {', '.join(statuses)}"]})
        impact = body.get("impact", "minor")
        if impact not in IMPACTS:
            raise FleetError(400, f"impact must be one of {', '.join(IMPACTS)}",
                             {"impact": [f"one of {', '.join(IMPACTS)}"]})
        affected = [self.component(str(k)) for k in body.get("components", [])]
        now, ident = _now(), _id()
        return {
            "id": ident, "name": name.strip(), "status": status, "impact": impact,
            "created_at": now, "updated_at": now, "monitoring_at": None, "resolved_at": None,
            "shortlink": f"{self.base_url}/incidents/{ident}", "page_id": self.page_id,
            "incident_updates": [{
                "id": _id(), "status": status, "body": str(body.get("body", name)),
                "created_at": now, "updated_at": now, "display_at": now,
                "affected_components": None, "incident_id": ident,
            }],
            "components": affected,
        }  # fmt: skip

    def open_incident(self, body: dict[str, Any]) -> dict[str, Any]:
        incident = self._event(body, INCIDENT_STATUSES, "investigating")
        self.incidents.insert(0, incident)
        self.touch()
        return incident

    def add_maintenance(self, body: dict[str, Any]) -> dict[str, Any]:
        maintenance = self._event({**body, "impact": "none"}, MAINTENANCE_STATUSES, "scheduled")
        start = datetime.now(UTC) + timedelta(minutes=float(body.get("starts_in_minutes", 0)))
        maintenance["impact"] = "maintenance"
        maintenance["scheduled_for"] = start.isoformat(timespec="milliseconds")
        maintenance["scheduled_until"] = (
            start + timedelta(minutes=float(body.get("minutes", 60)))
        ).isoformat(timespec="milliseconds")
        self.maintenances.insert(0, maintenance)
        self.touch()
        return maintenance


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def build_app(page: StatusPage) -> web.Application:
    async def summary(request: web.Request) -> web.StreamResponse:
        if page.page_status != 200:
            return web.Response(status=page.page_status, text="status page unavailable")
        body = json.dumps(page.summary()).encode()
        etag = etag_of(body)
        modified = format_datetime(page.updated_at.replace(microsecond=0), usegmt=True)
        headers = {"ETag": etag, "Last-Modified": modified, "Cache-Control": "max-age=0"}
        if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/json", headers=headers)

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"ok": page.api_status < 400}, status=page.api_status)

    async def set_component(request: web.Request) -> web.Response:
        body = await read_json(request)
        status = body.get("status")
        if status not in COMPONENT_STATUSES:
            raise FleetError(400, f"status must be one of {', '.join(COMPONENT_STATUSES)}",
                             {"status": [f"one of {', '.join(COMPONENT_STATUSES)}"]})
        component = page.component(request.match_info["key"])
        component["status"], component["updated_at"] = status, _now()
        page.touch()
        return web.json_response(component)

    async def open_incident(request: web.Request) -> web.Response:
        return web.json_response(page.open_incident(await read_json(request)), status=201)

    async def resolve(request: web.Request) -> web.Response:
        ident = request.match_info["id"]
        before = len(page.incidents)
        page.incidents = [i for i in page.incidents if i["id"] != ident]
        if len(page.incidents) == before:
            raise FleetError(404, f"no unresolved incident {ident!r}")
        page.touch()
        return web.json_response({"resolved": ident})

    async def add_maintenance(request: web.Request) -> web.Response:
        return web.json_response(page.add_maintenance(await read_json(request)), status=201)

    def status_setter(attr: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            body = await read_json(request)
            status = body.get("status")
            if not isinstance(status, int) or not 200 <= status <= 599:
                raise FleetError(400, "status must be an HTTP status (200-599)",
                                 {"status": ["an integer from 200 to 599"]})
            setattr(page, attr, status)
            return web.json_response({attr: status})
        return handler

    async def reset(request: web.Request) -> web.Response:
        page.reset()
        return web.json_response(page.summary())

    @web.middleware
    async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except FleetError as exc:
            return error_response(exc)
        return response

    app = web.Application(middlewares=[errors])
    app.router.add_get("/api/v2/summary.json", summary)
    app.router.add_get("/v1/ping", ping)
    app.router.add_post("/control/components/{key}", set_component)
    app.router.add_post("/control/incidents", open_incident)
    app.router.add_post("/control/incidents/{id}/resolve", resolve)
    app.router.add_post("/control/maintenances", add_maintenance)
    app.router.add_post("/control/api", status_setter("api_status"))
    app.router.add_post("/control/page", status_setter("page_status"))
    app.router.add_post("/control/reset", reset)
    return app


async def serve(host: str, port: int, name: str, components: list[str]) -> None:
    """Run until cancelled; prints the URL it listens on (port 0 picks a free one)."""
    address = ipaddress.ip_address(host)
    if not (address.is_loopback or address.is_unspecified):
        raise FleetError(
            400, f"the demo status page listens on loopback (or 0.0.0.0 in a container), not {host}"
        )
    page = StatusPage(name, components)
    runner = web.AppRunner(build_app(page), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    page.base_url = f"http://{host}:{bound}"
    print(f"statuspage {name} listening on {page.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
