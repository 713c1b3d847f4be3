"""Reading an Atlassian Statuspage summary (`/api/v2/summary.json`) into a dependency state.

The shape is Statuspage's public API v2: `page`, `status{indicator, description}`,
`components[]`, `incidents[]` (the unresolved ones) and `scheduled_maintenances[]`
(upcoming and in progress). Pure functions: the poller (health/vendors.py) fetches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from health.choices import EXTERNAL_SEVERITY, ExternalState

SUMMARY_PATH = "api/v2/summary.json"

# Statuspage's component statuses, as our states.
COMPONENT_STATES = {
    "operational": ExternalState.OPERATIONAL,
    "degraded_performance": ExternalState.DEGRADED,
    "partial_outage": ExternalState.PARTIAL_OUTAGE,
    "major_outage": ExternalState.MAJOR_OUTAGE,
    "under_maintenance": ExternalState.MAINTENANCE,
}
# The page's overall indicator, used when no components are mapped.
INDICATOR_STATES = {
    "none": ExternalState.OPERATIONAL,
    "minor": ExternalState.DEGRADED,
    "major": ExternalState.PARTIAL_OUTAGE,
    "critical": ExternalState.MAJOR_OUTAGE,
    "maintenance": ExternalState.MAINTENANCE,
}
ACTIVE_MAINTENANCE = frozenset({"in_progress", "verifying"})
# What we keep of long lists: a vendor page with hundreds of components stays one row.
MAX_COMPONENTS = 200
MAX_INCIDENTS = 20


class NotASummary(ValueError):
    """The answer is not a Statuspage summary (wrong URL, an error page, a changed API)."""


@dataclass
class PageStatus:
    indicator: str
    description: str
    components: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    maintenances: list[dict[str, Any]] = field(default_factory=list)


def summary_url(base: str) -> str:
    """`<base>/api/v2/summary.json`, whether or not the base ends with a slash."""
    return f"{base.rstrip('/')}/{SUMMARY_PATH}"


def parse(document: Any) -> PageStatus:
    """The parts of a summary we show and map; raises NotASummary on another shape."""
    if not isinstance(document, dict):
        raise NotASummary("the answer is not a JSON object")
    status = document.get("status")
    if not isinstance(status, dict) or not isinstance(status.get("indicator"), str):
        raise NotASummary("no status.indicator: is this a Statuspage summary.json?")
    components = [
        {
            "id": str(c.get("id", "")),
            "name": str(c.get("name", "")),
            "status": str(c.get("status", "")),
            "group": bool(c.get("group", False)),
        }
        for c in _objects(document.get("components"))[:MAX_COMPONENTS]
    ]
    incidents = [_incident(i) for i in _objects(document.get("incidents"))[:MAX_INCIDENTS]]
    maintenances = [
        {**_incident(m), "scheduled_for": m.get("scheduled_for"),
         "scheduled_until": m.get("scheduled_until")}
        for m in _objects(document.get("scheduled_maintenances"))[:MAX_INCIDENTS]
    ]  # fmt: skip
    return PageStatus(
        indicator=status["indicator"],
        description=str(status.get("description", "")),
        components=components,
        incidents=incidents,
        maintenances=maintenances,
    )


def _objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _incident(incident: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(incident.get("id", "")),
        "name": str(incident.get("name", "")),
        "status": str(incident.get("status", "")),
        "impact": str(incident.get("impact", "")),
        "shortlink": str(incident.get("shortlink") or ""),
        "updated_at": incident.get("updated_at"),
        "components": [str(c.get("name", "")) for c in _objects(incident.get("components"))],
    }


def mark_watched(page: PageStatus, wanted: list[str]) -> list[str]:
    """Flag the components `wanted` names (by id, or by name ignoring case); returns the
    wanted entries the page does not have."""
    keys = {w.strip().lower() for w in wanted}
    found: set[str] = set()
    for c in page.components:
        hit = {c["id"].lower(), c["name"].lower()} & keys
        c["watched"] = bool(hit)
        found |= hit
    return [w for w in wanted if w.strip().lower() not in found]


def state_of(page: PageStatus, wanted: list[str]) -> tuple[ExternalState, str]:
    """The dependency's state and a one-line summary: the worst watched component, or the
    page's overall indicator when nothing is mapped."""
    missing = mark_watched(page, wanted)
    if not wanted:
        state = INDICATOR_STATES.get(page.indicator, ExternalState.UNKNOWN)
        if state == ExternalState.OPERATIONAL and _maintenance_now(page):
            state = ExternalState.MAINTENANCE
        return state, f"their page says: {page.description or page.indicator}"
    watched = [c for c in page.components if c["watched"]]
    if not watched:
        return (
            ExternalState.UNKNOWN,
            f"none of the mapped components is on their page: {', '.join(missing)}",
        )
    states = [COMPONENT_STATES.get(c["status"], ExternalState.UNKNOWN) for c in watched]
    worst = max(states, key=lambda s: EXTERNAL_SEVERITY[s])
    hurt = [c["name"] for c, s in zip(watched, states, strict=True) if s == worst]
    if worst == ExternalState.OPERATIONAL:
        line = f"{len(watched)} watched component{'s' if len(watched) != 1 else ''} operational"
    else:
        line = f"{', '.join(hurt)}: {ExternalState(worst).label.lower()}"
    if missing:
        line += f" (not on their page: {', '.join(missing)})"
    return worst, line


def _maintenance_now(page: PageStatus) -> bool:
    return any(m["status"] in ACTIVE_MAINTENANCE for m in page.maintenances)
