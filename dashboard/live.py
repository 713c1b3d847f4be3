"""Live pushes of the dashboard's own sections (home, team and service pages), coalesced.

Each event changes a few sections; each is a `Tile`, so a burst (a rollout step touching
every instance, a flapping fleet) renders a section at most twice per window whatever the
number of events or of pages watching. Timelines are the exception: each event's row is
pushed on top of them (`timelines`, and `events` for the Events page). Imported by
`dashboard.apps` in every process (the spine pushes from web processes and workers alike).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.db.models import Q
from django.template.loader import render_to_string
from django.utils.html import format_html

from alerts.choices import IncidentEvent
from catalog.models import Service
from circuits.choices import CircuitEvent
from circuits.models import Circuit
from controlplane.live import EVERY_EVENT, Fragment, Lazy, Tile, renders
from controlplane.models import Event
from dashboard import sections
from deployments.choices import RolloutEvent
from health.choices import HealthEvent
from health.models import ServiceHealth
from health.templatetags.health_tags import dependency_key, status_badge

# The dashboard's own topics, named after its app like health's `health:overview.<env>`: the
# service page also listens to `service:<slug>`, where health and deployments push theirs.
HOME_TOPIC = "dashboard:home"
# The Events page (the audit log, newest first) and home's recent events both watch it.
EVENTS_TOPIC = "events"


def team_topic(slug: str) -> str:
    return f"dashboard:team.{slug}"


def service_topic(slug: str) -> str:
    return f"dashboard:service.{slug}"


def _home(section: str) -> list[Fragment]:
    # Every home section carries counts the summary (and the tab title) shows too.
    return [
        Tile(HOME_TOPIC, section, lambda: sections.render_home(section)),
        Tile(HOME_TOPIC, "summary", lambda: sections.render_home("summary")),
    ]


def _team(event: Event, section: str) -> list[Fragment]:
    if event.team is None:
        return []
    team_id = event.team.pk
    return [Tile(team_topic(event.team.slug), section, _bound_team(team_id, section))]


def _service(slug: str, service_id: int, section: str) -> Fragment:
    return Tile(service_topic(slug), section, _bound_service(service_id, section))


def _bound_team(team_id: int, section: str) -> Callable[[], str]:
    return lambda: sections.render_team(team_id, section)


def _bound_service(service_id: int, section: str) -> Callable[[], str]:
    return lambda: sections.render_service(service_id, section)


@renders(HealthEvent.SERVICE_CHANGED)
def health_sections(event: Event) -> Iterable[Fragment]:
    return [*_home("services"), *_team(event, "services")]


@renders(HealthEvent.SERVICE_CHANGED)
def dependency_badges(event: Event) -> Iterable[Fragment]:
    """A service's new state, to the pages of the services it calls and that call it.

    The neighbours are the declared dependencies both ways and the circuits seen in the
    event's environment; each badge is a coalesced tile showing the state as it is when
    rendered, swapped into every element showing that dependency in that environment.
    """
    if event.service is None or event.environment is None:
        return []
    service_id, environment_id = event.service.pk, event.environment.pk
    key = dependency_key(event.service.slug, event.environment.slug)
    render = _bound_badge(service_id, environment_id, key)
    return [
        Tile(service_topic(slug), f"dep-{key}", render)
        for slug in sorted(neighbours(service_id, environment_id))
    ]


def neighbours(service_id: int, environment_id: int) -> set[str]:
    """Slugs of the services whose pages list this one as a dependency (either way)."""
    through = Service.depends_on.through
    declared = through.objects.filter(
        Q(from_service_id=service_id) | Q(to_service_id=service_id)
    ).values_list("from_service__slug", "to_service__slug")
    seen = (
        Circuit.objects.filter(environment_id=environment_id)
        .filter(
            Q(service_id=service_id, protects_service__isnull=False)
            | Q(protects_service_id=service_id)
        )
        .values_list("service__slug", "protects_service__slug")
        .distinct()
    )
    own = Service.objects.filter(pk=service_id).values_list("slug", flat=True).first()
    return {slug for pair in [*declared, *seen] for slug in pair if slug and slug != own}


def _bound_badge(service_id: int, environment_id: int, key: str) -> Callable[[], str]:
    def render() -> str:
        status = (
            ServiceHealth.objects.filter(service_id=service_id, environment_id=environment_id)
            .values_list("status", flat=True)
            .first()
        ) or "unknown"
        return format_html(
            '<span class="sb-dep-health" data-dep-health="{}" '
            "hx-swap-oob='outerHTML:[data-dep-health=\"{}\"]'>{}</span>",
            key,
            key,
            status_badge(status),
        )

    return render


@renders(IncidentEvent.FAMILY)
def incident_sections(event: Event) -> Iterable[Fragment]:
    fragments = [*_home("incidents"), *_team(event, "incidents")]
    if event.service is not None:
        fragments.append(_service(event.service.slug, event.service.pk, "incidents"))
    return fragments


@renders(RolloutEvent.FAMILY)
def rollout_sections(event: Event) -> Iterable[Fragment]:
    fragments = [*_home("rollouts"), *_team(event, "rollouts")]
    if event.service is not None:
        fragments.append(_service(event.service.slug, event.service.pk, "rollouts"))
    return fragments


@renders(CircuitEvent.FAMILY)
def circuit_sections(event: Event) -> Iterable[Fragment]:
    fragments = [*_home("circuits"), *_team(event, "circuits")]
    if event.service is not None:
        fragments.append(_service(event.service.slug, event.service.pk, "circuits"))
    if event.subject_type == Circuit._meta.label_lower and event.subject_id.isdigit():
        # The protected service's page lists the circuits guarding calls to it.
        target = (
            Circuit.objects.filter(pk=int(event.subject_id), protects_service__isnull=False)
            .values_list("protects_service_id", "protects_service__slug")
            .first()
        )
        if target is not None:
            fragments.append(_service(target[1], target[0], "circuits"))
    return fragments


@renders(EVERY_EVENT)
def timelines(event: Event) -> Iterable[Fragment]:
    """Each event's row goes on top of home's timeline, and of its team's and service's pages'.

    A row per event, not a re-rendered section: every event reaches every page (the web
    process's hub batches a topic's rows into one websocket message per window). Lazy: a row
    is rendered only for topics some page watches.
    """
    fragments: list[Fragment] = [_row(HOME_TOPIC, event, "home-event-rows")]
    if event.team is not None:
        fragments.append(_row(team_topic(event.team.slug), event, "team-events"))
    if event.service is not None:
        fragments.append(_row(service_topic(event.service.slug), event, "service-events"))
    return fragments


def _row(topic: str, event: Event, target: str) -> Lazy:
    return Lazy(
        topic,
        lambda: render_to_string(
            "dashboard/partials/event_row_oob.html", {"event": event, "target": target}
        ),
    )


def render_event_row(event: Event) -> str:
    return render_to_string("partials/event_row_oob.html", {"event": event})


@renders(EVERY_EVENT)
def events_timeline(event: Event) -> Iterable[Fragment]:
    """Every event goes to the live timeline (the Events page and home's recent events)."""
    return [Lazy(EVENTS_TOPIC, lambda: render_event_row(event))]
