"""Live fragments for health events: rendered once per change, pushed to the pages showing them.

Topics: `health:overview.<env-slug>` (the overview grid of one environment),
`service:<slug>` (a service's page), `instance:<id>` (an instance's page).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.template.loader import render_to_string

from controlplane.live import Fragment, Tile, renders
from controlplane.models import Event
from health.models import Heartbeat, InstanceCheck, ServiceHealth


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


def tiles(event: Event) -> list[Fragment]:
    """The service's overview tile and its banner on the service page, coalesced per window
    (a burst of instance changes in one service renders each at most twice)."""
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


@renders("health.")
def health_fragments(event: Event) -> Iterable[Fragment]:
    if event.service is None or event.environment is None:
        return []
    if event.action == "health.instance.changed":
        return [*render_check(int(event.subject_id)), *tiles(event)]
    if event.action == "health.service.changed":
        return tiles(event)
    return []


@renders("heartbeat.")
def heartbeat_fragments(event: Event) -> Iterable[tuple[str, str]]:
    heartbeat = Heartbeat.objects.select_related("service").filter(pk=event.subject_id).first()
    if heartbeat is None:
        return []
    html = render_to_string(
        "health/partials/heartbeat_row.html", {"heartbeat": heartbeat, "oob": True}
    )
    return [(f"service:{heartbeat.service.slug}", html)]
