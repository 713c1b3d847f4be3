"""The health overview: worst first, a page at a time, counts over the whole environment."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from playwright.sync_api import Page, expect

from catalog.models import Service, Team
from controlplane.events import publish
from controlplane.live import Tile
from controlplane.models import Event
from controlplane.tests.browser import log_in
from health import live, overview
from health.choices import ServiceStatus
from health.models import ServiceHealth

# add_services gives service i the state STATES[i % 4] and the team team-(i % 5).
STATES = list(ServiceStatus.values)  # healthy, degraded, down, unknown


def add_services(world: Any, count: int, start: int = 0) -> list[Service]:
    """`count` services across 5 teams, each with a health row in production."""
    teams = [Team.objects.get_or_create(slug=f"team-{i}", name=f"Team {i}")[0] for i in range(5)]
    made = Service.objects.bulk_create(
        [
            Service(slug=f"svc-{i}", name=f"Service {i}", team=teams[i % 5])
            for i in range(start, start + count)
        ]
    )
    ServiceHealth.objects.bulk_create(
        [
            ServiceHealth(
                service=s,
                environment=world.production,
                status=STATES[(start + n) % 4],
                passing=(start + n) % 7,
            )
            for n, s in enumerate(made)
        ]
    )
    return made


def slugs_shown(html: str) -> list[str]:
    return re.findall(r'class="sb-tile [^>]*>\s*<strong>([a-z0-9-]+)</strong>', html)


def count_shown(html: str, status: str) -> int:
    """The number next to `status` in the counts summary."""
    found = re.search(rf'sb-status-{status}">[^<]*</span> (\d+)</a>', html)
    assert found, f"no count for {status}"
    return int(found.group(1))


@pytest.fixture
def viewer(world: Any) -> Client:
    client = Client()
    client.force_login(world.viewer)
    return client


def get(client: Client, query: str) -> str:
    response = client.get(f"/health/?{query}")
    assert response.status_code == 200, response.content
    return response.content.decode()


def queries_for(client: Client, query: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        get(client, query)
    return len(queries.captured_queries)


def checkout_went_down(world: Any) -> Event:
    """Checkout's health row in production says down, and that change is published."""
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.DOWN
    )
    return publish(
        "health.service.changed",
        subject=world.service,
        service=world.service,
        environment=world.production,
        payload={"from": "healthy", "to": "down", "reason": "", "in_maintenance": False},
    )


@pytest.mark.django_db
def test_it_runs_the_same_queries_for_10_and_300_services(world: Any, viewer: Client) -> None:
    # given 10 services
    add_services(world, 10)
    small = queries_for(viewer, "env=production")
    # when there are 300
    add_services(world, 290, start=10)
    large = queries_for(viewer, "env=production")
    # then the page costs the same few queries and loads only one page of tiles
    assert small == large <= 10
    assert queries_for(viewer, "env=production&team=team-1&q=svc&page=2") == large
    assert len(slugs_shown(get(viewer, "env=production"))) == overview.TILES_PER_PAGE


@pytest.mark.django_db
def test_it_orders_problems_first_then_team_then_service(world: Any) -> None:
    # given services in every state across teams (checkout and indexer have no verdict)
    add_services(world, 12)
    # when the overview orders them
    scope = overview.Scope(world.production)
    order = [(s.status, s.team.slug, s.slug) for s in overview.worst_first(scope)]
    # then down, degraded, unknown, healthy; within a state by team, then service
    assert [status for status, _, _ in order] == sorted(
        (s for s, _, _ in order), key=overview.PROBLEM_ORDER.index
    )
    assert order[:3] == [
        ("down", "team-0", "svc-10"),
        ("down", "team-1", "svc-6"),
        ("down", "team-2", "svc-2"),
    ]
    assert ("unknown", "payments", "checkout") in order
    assert order.index(("unknown", "payments", "checkout")) < order.index(
        ("unknown", "team-2", "svc-7")
    )
    assert order[-1][0] == "healthy"


@pytest.mark.django_db
def test_the_first_page_shows_every_problem_before_any_healthy_service(
    world: Any, viewer: Client
) -> None:
    # given 300 services: 75 down, 75 degraded, 75 unknown, 75 healthy
    add_services(world, 300)
    # when the first page is shown
    shown = set(slugs_shown(get(viewer, "env=production")))
    # then it holds all 75 down services and 25 degraded ones, none healthy or unknown
    state_of = {f"svc-{i}": STATES[i % 4] for i in range(300)}
    assert {state_of[s] for s in shown} == {"down", "degraded"}
    assert sum(state_of[s] == "down" for s in shown) == 75


@pytest.mark.django_db
def test_page_two_has_the_rest_and_the_links_keep_the_filters(world: Any, viewer: Client) -> None:
    # given 600 services, 120 of them team-1's
    add_services(world, 600)
    # when team-1's services matching "svc" are paged through
    first = get(viewer, "env=production&team=team-1&q=svc")
    # then the next page's link keeps every filter
    assert 'href="?env=production&amp;team=team-1&amp;q=svc&amp;page=2"' in first
    second = get(viewer, "env=production&team=team-1&q=svc&page=2")
    assert "Page 2 of 2" in second
    # and the two pages show each of the 120 exactly once
    shown = slugs_shown(first) + slugs_shown(second)
    assert len(shown) == len(set(shown)) == 120
    assert set(shown) == {f"svc-{i}" for i in range(600) if i % 5 == 1}


@pytest.mark.django_db
def test_the_counts_cover_every_page(world: Any, viewer: Client) -> None:
    # given 300 services (75 per state) plus checkout and indexer without a verdict
    add_services(world, 300)
    # when any page is shown
    for page in ("1", "3"):
        html = get(viewer, f"env=production&page={page}")
        # then the counts are the environment's, not the page's, as icon + word + number
        assert count_shown(html, "down") == 75
        assert count_shown(html, "degraded") == 75
        assert count_shown(html, "healthy") == 75
        assert count_shown(html, "unknown") == 77
        assert "302 services" in html
        assert '<span class="sb-status sb-status-down">✖ down</span>' in html
    # and with a team filter, the team's, linking to the team's services in that state
    html = get(viewer, "env=production&team=team-1")
    assert count_shown(html, "down") + count_shown(html, "healthy") == 30
    assert 'href="?env=production&amp;team=team-1&amp;state=down"' in html


@pytest.mark.django_db
def test_it_searches_slugs_and_names(world: Any, viewer: Client) -> None:
    # given a service whose name says more than its slug
    add_services(world, 20)
    Service.objects.create(slug="ledger", name="Payments Ledger", team=world.team)
    # when searching, case-insensitively, by name or by slug
    by_name = slugs_shown(get(viewer, "env=production&q=PAYMENTS+led"))
    by_slug = slugs_shown(get(viewer, "env=production&q=svc-1"))
    # then only the matches are shown, and counted
    assert by_name == ["ledger"]
    assert sorted(by_slug) == sorted(["svc-1", *(f"svc-{i}" for i in range(10, 20))])
    html = get(viewer, "env=production&q=svc-1")
    assert "11 services" in html
    nothing = get(viewer, "env=production&q=no-such-service&page=2")
    assert "No services match." in nothing and "0 services" in nothing


@pytest.mark.django_db
def test_it_filters_by_team_and_state(world: Any, viewer: Client) -> None:
    add_services(world, 20)
    html = get(viewer, "env=production&team=team-1&state=down")
    # svc-1, svc-6, svc-11, svc-16 are team-1; of those, index % 4 == 2 is down: svc-6
    assert slugs_shown(html) == ["svc-6"]
    assert "✖ down" in html  # status reads as icon + word
    assert "health:overview.production" in html  # the page listens for live tiles


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["abc", "0", "-1", "999", "1.5", ""])
def test_a_bad_or_past_the_end_page_still_shows_a_page(
    world: Any, viewer: Client, page: str
) -> None:
    # given three pages of services
    add_services(world, 250)
    # when the page asked for is not a page number, or past the end
    html = get(viewer, f"env=production&page={page}")
    # then Django's convention: not a number is the first page, out of range the last
    expected = "Page 1 of 3" if page in ("abc", "1.5", "") else "Page 3 of 3"
    assert expected in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [("state=sideways", "state"), ("team=nobody", "team"), ("q=" + "x" * 101, "q")],
)
def test_a_bad_filter_is_a_400_naming_it(
    world: Any, viewer: Client, query: str, field: str
) -> None:
    response = viewer.get(f"/health/?env=production&{query}")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode().startswith(f"{field}: ")


@pytest.mark.django_db
def test_anyone_logged_in_sees_every_team_and_nobody_else(world: Any) -> None:
    add_services(world, 5)
    outsider = Client()
    outsider.force_login(world.outsider)
    assert "svc-3" in slugs_shown(get(outsider, "env=production&team=team-3"))
    assert Client().get("/health/?env=production").status_code == 302


@pytest.mark.django_db
def test_a_service_change_pushes_the_counts_the_pages_show(world: Any, viewer: Client) -> None:
    # given checkout has gone down in production
    event = checkout_went_down(world)
    # when its fragments are rendered
    pushed = {t.key: t.render() for t in live.health_fragments(event) if isinstance(t, Tile)}
    # then the environment's and the team's counts go to the overview, each replacing the
    # element with the same id on the pages showing those counts
    env_wide = pushed[f"health-counts-{world.production.pk}"]
    team = pushed[f"health-counts-{world.production.pk}-team-{world.team.pk}"]
    for html, query in ((env_wide, "env=production"), (team, "env=production&team=payments")):
        element_id = re.search(r'id="(health-counts-[^"]+)"', html)
        assert element_id and f'id="{element_id.group(1)}"' in get(viewer, query)
        assert 'hx-swap-oob="outerHTML"' in html
        assert count_shown(html, "down") == 1
    assert count_shown(env_wide, "unknown") == 1  # indexer has no verdict yet
    assert count_shown(team, "unknown") == 0


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_live_page_updates_its_tiles_and_counts_and_ignores_other_pages_tiles(
    world: Any, page: Page
) -> None:
    # given 150 services and a healthy checkout: svc-2 (down) is on page 1, checkout on 2
    add_services(world, 150)
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.HEALTHY
    )
    log_in(page, "viewer", "pw-viewer")
    page.goto("/health/?env=production&page=2")
    expect(page.locator("#live-status")).to_contain_text("Live")
    page.evaluate("window.stillTheSamePage = true")
    counts = page.locator(f"#health-counts-{world.production.pk}")
    expect(counts).to_contain_text("▲ degraded 38")
    expect(counts).to_contain_text("✔ healthy 39")
    checkout = page.locator(f"#tile-{world.service.pk}-{world.production.pk}")
    expect(checkout).to_contain_text("healthy")
    # when svc-2 (page 1) turns degraded, then checkout (this page) goes down
    for service, status in (("svc-2", ServiceStatus.DEGRADED), ("checkout", ServiceStatus.DOWN)):
        changed = Service.objects.get(slug=service)
        with transaction.atomic():
            ServiceHealth.objects.filter(service=changed, environment=world.production).update(
                status=status
            )
            publish(
                "health.service.changed",
                subject=changed,
                service=changed,
                environment=world.production,
                payload={"to": status, "reason": "", "in_maintenance": False},
            )
    # then this page's tile turns red and the counts follow, without a reload; svc-2's
    # tile, not on this page, was dropped without breaking anything
    expect(checkout).to_contain_text("✖ down")
    expect(counts).to_contain_text("▲ degraded 39")
    expect(counts).to_contain_text("✔ healthy 38")
    expect(counts).to_contain_text("✖ down 37")
    svc_2 = Service.objects.get(slug="svc-2")
    expect(page.locator(f"#tile-{svc_2.pk}-{world.production.pk}")).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True
