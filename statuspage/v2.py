"""A page as Statuspage's public API v2 (`summary.json`, `status.json`), so other tools,
and other Signalbox installations' vendor pollers, can watch it as a dependency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from statuspage.models import PublicIncident
from statuspage.summary import Component, Maintenance, PageView


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def page_part(view: PageView, url: str) -> dict[str, Any]:
    return {
        "id": view.page.slug,
        "name": view.page.title,
        "url": url,
        "time_zone": "Etc/UTC",
        "updated_at": _iso(view.updated_at),
    }


def status_part(view: PageView) -> dict[str, str]:
    return {"indicator": view.indicator, "description": view.description}


def component(c: Component, page_id: str) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "status": c.status,
        "created_at": _iso(c.entry.page.created_at),
        "updated_at": _iso(c.updated_at),
        "position": c.entry.position,
        "description": None,
        "showcase": True,
        "group_id": None,
        "page_id": page_id,
        "group": False,
        "only_show_if_degraded": False,
    }


def incident(view: PageView, i: PublicIncident, url: str) -> dict[str, Any]:
    page_id = view.page.slug
    update = {
        "id": f"{i.pk}-latest",
        "status": i.status,
        "body": i.message or i.title,
        "incident_id": str(i.pk),
        "created_at": _iso(i.updated_at),
        "updated_at": _iso(i.updated_at),
        "display_at": _iso(i.updated_at),
    }
    return {
        "id": str(i.pk),
        "name": i.title,
        "status": i.status,
        "impact": i.impact,
        "created_at": _iso(i.created_at),
        "updated_at": _iso(i.updated_at),
        "monitoring_at": None,
        "resolved_at": _iso(i.resolved_at),
        "started_at": _iso(i.created_at),
        "shortlink": url,
        "page_id": page_id,
        "incident_updates": [update],
        "components": [component(c, page_id) for c in view.components_of(i)],
    }


def maintenance(view: PageView, m: Maintenance, url: str) -> dict[str, Any]:
    page_id = view.page.slug
    return {
        "id": m.id,
        "name": m.name,
        "status": m.status,
        "impact": "maintenance",
        "created_at": _iso(m.scheduled_for),
        "updated_at": _iso(m.scheduled_for),
        "monitoring_at": None,
        "resolved_at": None,
        "started_at": _iso(m.scheduled_for),
        "scheduled_for": _iso(m.scheduled_for),
        "scheduled_until": _iso(m.scheduled_until),
        "shortlink": url,
        "page_id": page_id,
        "incident_updates": [],
        "components": [component(c, page_id) for c in m.components],
    }


def summary(view: PageView, url: str) -> dict[str, Any]:
    page_id = view.page.slug
    return {
        "page": page_part(view, url),
        "status": status_part(view),
        "components": [component(c, page_id) for c in view.components],
        "incidents": [incident(view, i, url) for i in view.incidents],
        "scheduled_maintenances": [maintenance(view, m, url) for m in view.maintenances],
    }


def status(view: PageView, url: str) -> dict[str, Any]:
    return {"page": page_part(view, url), "status": status_part(view)}
