"""Live pushes of the dashboard's own sections (home, team and service pages), coalesced.

Each event changes a few sections; each is a `Tile`, so a burst (a rollout step touching
every instance, a flapping fleet) renders a section at most twice per window whatever the
number of events or of pages watching. Imported by `controlplane.apps` in every process
(the spine pushes from web processes and workers alike).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.template.loader import render_to_string

from circuits.models import Circuit
from controlplane.dashboard import sections
from controlplane.live import Fragment, Tile, push_coalesced, renders
from controlplane.models import Event

# The dashboard's own topics, named after its app like health's `health:overview.<env>`: the
# service page also listens to `service:<slug>`, where health and deployments push theirs.
HOME_TOPIC = "dashboard:home"
# Home's timeline is one coalesced section, not a row per event: with 500 pages open at 100
# events/s, rows are 50,000 websocket messages a second, which one web process on 2 cores
# cannot send (bench/live_fanout: seconds behind within a minute). A section at most every
# 150 ms is ~7 messages per page per second, and an event shows within the window (p99
# under 250 ms in the same bench). Shorter than the 250 ms of state tiles, for that target.
HOME_EVENTS_WINDOW = 0.15


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


@renders("health.service.")
def health_sections(event: Event) -> Iterable[Fragment]:
    return [*_home("services"), *_team(event, "services")]


@renders("incident.")
def incident_sections(event: Event) -> Iterable[Fragment]:
    fragments = [*_home("incidents"), *_team(event, "incidents")]
    if event.service is not None:
        fragments.append(_service(event.service.slug, event.service.pk, "incidents"))
    return fragments


@renders("rollout.")
def rollout_sections(event: Event) -> Iterable[Fragment]:
    fragments = [*_home("rollouts"), *_team(event, "rollouts")]
    if event.service is not None:
        fragments.append(_service(event.service.slug, event.service.pk, "rollouts"))
    return fragments


@renders("circuit.")
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


@renders("")
def timelines(event: Event) -> Iterable[Fragment]:
    """Each event heads home's timeline (coalesced), and its team's and service's pages'."""
    # Pushed here rather than returned as a Tile: a Tile has the default window.
    push_coalesced(
        HOME_TOPIC, "events", lambda: sections.render_home("events"), window=HOME_EVENTS_WINDOW
    )
    fragments: list[Fragment] = []
    if event.team is not None:
        html = render_to_string(
            "dashboard/partials/event_row_oob.html", {"event": event, "target": "team-events"}
        )
        fragments.append((team_topic(event.team.slug), html))
    if event.service is not None:
        html = render_to_string(
            "dashboard/partials/event_row_oob.html", {"event": event, "target": "service-events"}
        )
        fragments.append((service_topic(event.service.slug), html))
    return fragments
