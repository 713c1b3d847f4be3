"""The live sections of the dashboard's pages: one context builder and one template each.

A page renders them inline; `dashboard/live.py` renders the same template with `oob` set
and pushes it when an event changes what the section shows. Builders take ids and read
the state as it is now, so a coalesced push (rendered up to a window later) is current.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.template.loader import render_to_string

from catalog.models import Environment, Service, Team
from controlplane.models import Event
from dashboard import service as service_data
from dashboard import team as team_data
from dashboard.home import (
    Attention,
    active_rollouts,
    open_circuits,
    open_incidents,
    unhealthy_services,
)
from deployments.choices import ACTIVE_STATES
from deployments.models import Rollout
from health.models import ServiceHealth
from health.rollups import DaySummary, day_summaries

Context = dict[str, Any]
# A pushed section is rendered once for every viewer: who may act is not known (None), so
# action buttons show and the server decides when one is pressed.
PUSHED = {"oob": True, "acting_teams": None}

# -- home ------------------------------------------------------------------------------------


HOME_EVENTS = 10


def recent_events() -> list[Event]:
    return list(Event.objects.select_related("team", "service", "environment")[:HOME_EVENTS])


def home_context() -> Context:
    attention = Attention.now()
    return {
        "attention": attention,
        "events": recent_events(),
        "days": tile_days(attention.services),
    }


def tile_days(services: list[ServiceHealth]) -> dict[tuple[int, int], DaySummary]:
    """The unhealthy tiles' uptime and sparklines: one query for the section, not per tile."""
    return day_summaries((h.service_id, h.environment_id) for h in services)


HOME_SECTIONS: dict[str, str] = {
    "summary": "dashboard/partials/home_summary.html",
    "incidents": "dashboard/partials/home_incidents.html",
    "services": "dashboard/partials/home_services.html",
    "rollouts": "dashboard/partials/home_rollouts.html",
    "circuits": "dashboard/partials/home_circuits.html",
    "events": "dashboard/partials/home_events.html",
}


def render_home(section: str) -> str:
    """One of home's sections as an out-of-band swap, with the state as it is now."""
    return render_to_string(HOME_SECTIONS[section], {**_home_part(section), **PUSHED})


def _home_part(section: str) -> Context:
    # A pushed section reads only what it shows (the summary needs every count).
    if section == "incidents":
        incidents, counts = open_incidents()
        return {"incidents": incidents, "incident_counts": counts}
    if section == "services":
        services, counts = unhealthy_services()
        return {"services": services, "service_counts": counts, "days": tile_days(services)}
    if section == "rollouts":
        rollouts, total = active_rollouts()
        return {"rollouts": rollouts, "rollouts_total": total}
    if section == "circuits":
        circuits, counts = open_circuits()
        return {"circuits": circuits, "circuit_counts": counts}
    if section == "events":
        return {"events": recent_events()}
    return {"attention": Attention.now(with_rows=False)}


# -- team ------------------------------------------------------------------------------------


def team_services_context(team: Team, services: list[Service]) -> Context:
    environments = list(Environment.objects.all())
    return {
        "team": team,
        "environments": environments,
        "rows": team_data.service_rows(team, environments, services),
    }


def team_sections_context(team: Team) -> Context:
    incidents, incident_counts = open_incidents(team=team)
    rollouts, rollouts_total = active_rollouts(team=team)
    circuits, circuit_counts = open_circuits(service__team=team)
    return {
        "team": team,
        "incidents": incidents,
        "incident_counts": incident_counts,
        "rollouts": rollouts,
        "rollouts_total": rollouts_total,
        "circuits": circuits,
        "circuit_counts": circuit_counts,
    }


TEAM_SECTIONS: dict[str, str] = {
    "services": "dashboard/partials/team_services.html",
    "incidents": "dashboard/partials/team_incidents.html",
    "rollouts": "dashboard/partials/team_rollouts.html",
    "circuits": "dashboard/partials/team_circuits.html",
}


def render_team(team_id: int, section: str) -> str:
    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        return ""
    if section == "services":
        services = list(team.services.order_by("slug")[: team_data.SERVICES_PER_PAGE])
        context = team_services_context(team, services)
    else:
        context = _team_part(team, section)
    return render_to_string(TEAM_SECTIONS[section], {**context, **PUSHED})


def _team_part(team: Team, section: str) -> Context:
    if section == "incidents":
        incidents, counts = open_incidents(team=team)
        return {"team": team, "incidents": incidents, "incident_counts": counts}
    if section == "rollouts":
        rollouts, total = active_rollouts(team=team)
        return {"team": team, "rollouts": rollouts, "rollouts_total": total}
    circuits, counts = open_circuits(service__team=team)
    return {"team": team, "circuits": circuits, "circuit_counts": counts}


# -- service ---------------------------------------------------------------------------------


def service_rollouts_context(service: Service, history: list[Rollout] | None = None) -> Context:
    """Active rollouts with their progress (from `history` when the page already read it)."""
    if history is None:
        active = list(
            Rollout.objects.filter(service=service, state__in=ACTIVE_STATES)
            .select_related("team", "service", "environment")
            .order_by("environment__order")
        )
    else:
        active = sorted(
            (r for r in history if r.state in ACTIVE_STATES), key=lambda r: r.environment.order
        )
    return {"service": service, "active_rollouts": active}


def service_circuits_context(service: Service) -> Context:
    return {
        "service": service,
        "owned_circuits": service_data.owned_circuits(service),
        "circuits_towards": service_data.towards(service),
    }


def service_incidents_context(service: Service) -> Context:
    return {"service": service, "incidents": service_data.incidents(service)}


SERVICE_SECTIONS: dict[str, tuple[str, Callable[[Service], Context]]] = {
    "rollouts": ("dashboard/partials/service_rollouts.html", service_rollouts_context),
    "circuits": ("dashboard/partials/service_circuits.html", service_circuits_context),
    "incidents": ("dashboard/partials/service_incidents.html", service_incidents_context),
}


def render_service(service_id: int, section: str) -> str:
    service = Service.objects.select_related("team").filter(pk=service_id).first()
    if service is None:
        return ""
    template, build = SERVICE_SECTIONS[section]
    return render_to_string(template, {**build(service), **PUSHED})
