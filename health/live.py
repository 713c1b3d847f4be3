"""Live fragments for health events: rendered once per change, pushed to the pages showing them.

Topics: `health:overview.<env-slug>` (the overview of one environment: its tiles and its
counts per state, for the whole environment and per team),
`service:<slug>` (a service's page), `instance:<id>` (an instance's page),
`external:<slug>` (an external dependency's page) and `external:list` (the list of them).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.template.loader import render_to_string

from catalog.models import Environment, Team
from controlplane.live import Fragment, Tile, renders
from controlplane.models import Event
from health import overview
from health.choices import ExternalEvent, HealthEvent, HeartbeatEvent
from health.models import Heartbeat, InstanceCheck, ServiceHealth, VendorStatus


def overview_topic(environment_slug: str) -> str:
    return f"health:overview.{environment_slug}"


def _health_html(template: str, service_id: int, environment_id: int) -> str:
    health = (
        ServiceHealth.objects.select_related("service", "service__team", "environment")
        .filter(service_id=service_id, environment_id=environment_id)
        .first()
    )
    if health is None:
        return ""
    return render_to_string(template, {"health": health, "oob": True})


def _counts_html(environment_id: int, team_id: int | None = None) -> str:
    environment = Environment.objects.filter(pk=environment_id).first()
    team = Team.objects.filter(pk=team_id).first() if team_id is not None else None
    if environment is None or (team_id is not None and team is None):
        return ""
    context = overview.state_counts(overview.Scope(environment, team))
    return render_to_string("health/partials/overview_counts.html", {**context, "oob": True})


def counts(event: Event) -> list[Fragment]:
    """The overview's counts per state, for the environment and for the service's team.

    Only a service's change moves them (an instance's does not, by itself). Coalesced per
    environment and team, so a burst across many services renders each at most twice per
    window.
    """
    assert event.service is not None and event.environment is not None
    environment_id, team_id = event.environment.pk, event.service.team_id
    topic = overview_topic(event.environment.slug)
    return [
        Tile(topic, f"health-counts-{environment_id}", lambda: _counts_html(environment_id)),
        Tile(
            topic,
            f"health-counts-{environment_id}-team-{team_id}",
            lambda: _counts_html(environment_id, team_id),
        ),
    ]


def tiles(event: Event) -> list[Fragment]:
    """The service's overview tile and its banner on the service page, coalesced per window
    (a burst of instance changes in one service renders each at most twice).

    The tile goes to every overview page of the environment; a page that does not show the
    service (another page of the list, another filter) has no element with its id, and htmx
    drops it.
    """
    assert event.service is not None and event.environment is not None
    service_id, environment_id = event.service.pk, event.environment.pk
    key = f"health-{service_id}-{environment_id}"
    return [
        Tile(
            overview_topic(event.environment.slug),
            key,
            lambda: _health_html("health/partials/tile.html", service_id, environment_id),
        ),
        Tile(
            f"service:{event.service.slug}",
            key,
            lambda: _health_html("health/partials/service_env.html", service_id, environment_id),
        ),
    ]


def render_check(instance_id: int) -> list[Fragment]:
    """The instance's row on its service page and its detail on its own page."""
    check = (
        InstanceCheck.objects.select_related(
            "instance", "instance__service", "instance__environment"
        )
        .filter(instance_id=instance_id)
        .first()
    )
    if check is None:
        return []
    row = render_to_string("health/partials/check_row.html", {"check": check, "oob": True})
    detail = render_to_string("health/partials/check_detail.html", {"check": check, "oob": True})
    return [(f"service:{check.instance.service.slug}", row), (f"instance:{instance_id}", detail)]


@renders(HealthEvent.FAMILY)
def health_fragments(event: Event) -> Iterable[Fragment]:
    if event.service is None or event.environment is None:
        return []
    if event.action == HealthEvent.INSTANCE_CHANGED:
        return [*render_check(int(event.subject_id)), *tiles(event)]
    if event.action == HealthEvent.SERVICE_CHANGED:
        return [*tiles(event), *counts(event)]
    return []


@renders(HeartbeatEvent.FAMILY)
def heartbeat_fragments(event: Event) -> Iterable[tuple[str, str]]:
    heartbeat = Heartbeat.objects.select_related("service").filter(pk=event.subject_id).first()
    if heartbeat is None:
        return []
    html = render_to_string(
        "health/partials/heartbeat_row.html", {"heartbeat": heartbeat, "oob": True}
    )
    return [(f"service:{heartbeat.service.slug}", html)]


def external_topic(slug: str) -> str:
    return f"external:{slug}"


EXTERNAL_LIST_TOPIC = "external:list"


def _vendor_html(template: str, dependency_id: int) -> str:
    status = (
        VendorStatus.objects.select_related("dependency")
        .filter(dependency_id=dependency_id)
        .first()
    )
    if status is None:
        return ""
    return render_to_string(
        template, {"status": status, "dependency": status.dependency, "oob": True}
    )


@renders(ExternalEvent.FAMILY)
def external_fragments(event: Event) -> Iterable[Fragment]:
    """The dependency's state badge on its page and its row in the list, coalesced."""
    if not event.subject_id or event.action != ExternalEvent.STATUS_CHANGED:
        return []
    dependency_id = int(event.subject_id)
    slug = str(event.payload.get("dependency", ""))
    key = f"external-{dependency_id}"
    return [
        Tile(
            external_topic(slug),
            key,
            lambda: _vendor_html("health/partials/vendor_state.html", dependency_id),
        ),
        Tile(
            EXTERNAL_LIST_TOPIC,
            f"{key}-row",
            lambda: _vendor_html("health/partials/vendor_row.html", dependency_id),
        ),
    ]
