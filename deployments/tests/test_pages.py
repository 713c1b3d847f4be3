"""The deployments board, the rollout page, its buttons, live fragments and the service history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import Service
from controlplane.events import publish
from controlplane.live import Tile, group_name
from deployments.choices import PauseCause, RolloutState
from deployments.live import rollout_fragments
from deployments.models import AnalysisRun, Measurement, Rollout, RolloutStep
from deployments.views import service_history

pytestmark = pytest.mark.django_db


def make_rollout(world: Any, service: Any = None, **fields: Any) -> Rollout:
    service = service or world.service
    defaults = {
        "from_version": "1.0",
        "to_version": "2.0",
        "strategy": "canary",
        "steps": [{"set_weight": 10}, {"analysis": {}}, {"set_weight": 100}],
    }
    return Rollout.objects.create(
        team=service.team, service=service, environment=world.production, **{**defaults, **fields}
    )


def measured(rollout: Rollout, verdict: str = "pass", reason: str = "all good") -> Measurement:
    run = AnalysisRun.objects.create(rollout=rollout, step_index=1, metrics=[])
    return Measurement.objects.create(
        run=run,
        rollout=rollout,
        metric="errors",
        provider="lb_stats",
        value=0.5,
        threshold="5xx <= 5%",
        verdict=verdict,
        reason=reason,
    )


def signed_in(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def test_the_board_shows_every_teams_active_rollouts_and_recent_history(world: Any) -> None:
    # given a running rollout of each team, and a finished one
    mine = make_rollout(
        world,
        state=RolloutState.PROGRESSING,
        step_index=1,
        desired_weight=10,
        applied_weight=10.0,
        message="measuring",
    )
    measured(mine, "pass")
    theirs = make_rollout(
        world,
        world.other_service,
        state=RolloutState.PAUSED,
        paused_for=PauseCause.INCONCLUSIVE,
        message="no data yet",
    )
    done = make_rollout(
        world, to_version="1.9", state=RolloutState.ROLLED_BACK, message="analysis failed: 5xx"
    )
    # when the outsider (search) looks
    page = signed_in(world.outsider).get("/deployments/").content.decode()
    # then both teams' rollouts are there with step, weights and verdicts, and the history
    assert f'id="rollout-row-{mine.pk}"' in page
    assert f'id="rollout-row-{theirs.pk}"' in page
    assert "2/3 analysis" in page
    assert "10% / 90%" in page
    assert "errors: pass" in page
    assert "(analysis had no data)" in page
    assert f'id="rollout-history-{done.pk}"' in page and "analysis failed: 5xx" in page
    assert '<meta name="sb-live-topics" content="rollouts">' in page


def test_the_board_costs_the_same_queries_for_2_or_20_rollouts(world: Any) -> None:
    client = signed_in(world.viewer)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/deployments/").status_code == 200
        return len(queries)

    for index in range(2):
        service = Service.objects.create(slug=f"svc{index}", name="s", team=world.team)
        measured(make_rollout(world, service, state=RolloutState.PROGRESSING))
    few = count()
    for index in range(2, 20):
        service = Service.objects.create(slug=f"svc{index}", name="s", team=world.team)
        measured(make_rollout(world, service, state=RolloutState.PROGRESSING))
    assert count() == few


def test_the_rollout_page_has_the_timeline_measurements_and_chart(world: Any) -> None:
    rollout = make_rollout(
        world, state=RolloutState.PROGRESSING, step_index=1, applied_weight=10.0, desired_weight=10
    )
    RolloutStep.objects.create(
        rollout=rollout,
        index=0,
        kind="set_weight",
        outcome="done",
        desired_weight=10,
        applied_weight=10.0,
        finished_at=rollout.created_at,
    )
    measured(rollout, "fail", "5xx rate 7.50% > 5%")
    page = signed_in(world.viewer).get(rollout.get_absolute_url()).content.decode()
    assert "5xx rate 7.50% &gt; 5%" in page
    assert 'data-verdict="fail"' in page
    assert "<polyline" in page
    assert f'<meta name="sb-live-topics" content="rollout:{rollout.pk}">' in page


def test_action_buttons_show_only_to_people_who_may_act(world: Any) -> None:
    rollout = make_rollout(world, state=RolloutState.PROGRESSING)
    for persona, shown in (
        ("deployer", True),
        ("owner", True),
        ("viewer", False),
        ("outsider", False),
    ):
        page = signed_in(getattr(world, persona)).get(rollout.get_absolute_url()).content.decode()
        assert ('/pause"' in page) is shown, persona
        assert ("Deployers and owners of payments can act" in page) is not shown, persona


def test_a_button_press_needs_the_csrf_token_and_the_right_role(world: Any) -> None:
    rollout = make_rollout(world, state=RolloutState.PROGRESSING)
    url = f"/deployments/rollouts/{rollout.pk}/pause"
    deployer = signed_in(world.deployer, enforce_csrf_checks=True)
    deployer.get(rollout.get_absolute_url())
    token = deployer.cookies["csrftoken"].value
    # without the token: refused
    assert deployer.post(url, {"reason": "x"}).status_code == 403
    # a viewer with a token: refused
    viewer = signed_in(world.viewer, enforce_csrf_checks=True)
    viewer.get(rollout.get_absolute_url())
    refused = viewer.post(url, HTTP_X_CSRFTOKEN=viewer.cookies["csrftoken"].value)
    assert refused.status_code == 403
    # the deployer with the token, as htmx sends it
    response = deployer.post(
        url, {"reason": "lunch"}, HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == rollout.get_absolute_url()
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PAUSED
    assert rollout.message == "paused by deployer: lunch"


def test_a_refused_action_is_explained_on_the_page(world: Any) -> None:
    rollout = make_rollout(world, state=RolloutState.SUCCEEDED, from_version="")
    client = signed_in(world.deployer)
    response = client.post(f"/deployments/rollouts/{rollout.pk}/abort", follow=True)
    assert "cannot abort rollout" in response.content.decode()


@pytest.fixture
def watching() -> Iterator[Any]:
    """watching(topic): a page subscribed to the topic, as a web process's layer subscribes."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    config = cast(dict[str, Any], settings.CHANNEL_LAYERS["default"])["CONFIG"]

    def watch(topic: str) -> None:
        pubsub.subscribe(f"{config['prefix']}__group__{group_name(topic)}")
        pubsub.get_message(timeout=1)  # the subscription is confirmed

    yield watch
    pubsub.close()


def test_live_tiles_cover_the_board_the_page_and_the_service(world: Any, watching: Any) -> None:
    # given a rollout that moved, and pages watching the board, it and the service
    rollout = make_rollout(world, state=RolloutState.PROGRESSING, applied_weight=25.0)
    for topic in ("rollouts", f"rollout:{rollout.pk}", "service:checkout"):
        watching(topic)
    event = publish("rollout.step_started", subject=rollout, message="step 2")
    # when its event is rendered
    tiles = {tile.topic: tile for tile in rollout_fragments(event) if isinstance(tile, Tile)}
    # then the board's row, the rollout page and the service's history each get one tile
    assert set(tiles) == {"rollouts", f"rollout:{rollout.pk}", "service:checkout"}
    row = tiles["rollouts"].render()
    assert f'<template><tr id="rollout-row-{rollout.pk}" hx-swap-oob="outerHTML">' in row
    assert "25% / 75%" in row
    page = tiles[f"rollout:{rollout.pk}"].render()
    assert f'id="rollout-main-{rollout.pk}" hx-swap-oob="true"' in page
    # buttons are per person: the pushed fragment fetches them instead of carrying them
    assert f'hx-get="/deployments/rollouts/{rollout.pk}/actions"' in page
    assert 'id="deploy-history-checkout" hx-swap-oob="true"' in tiles["service:checkout"].render()
    # a finished rollout redraws the whole board (it moves to the history)
    rollout.state = RolloutState.SUCCEEDED
    rollout.save()
    done = [
        t
        for t in rollout_fragments(publish("rollout.succeeded", subject=rollout))
        if isinstance(t, Tile) and t.topic == "rollouts"
    ]
    assert 'id="rollout-board" hx-swap-oob="true"' in done[0].render()


def test_nothing_is_rendered_for_pages_nobody_watches(world: Any) -> None:
    rollout = make_rollout(world, state=RolloutState.PROGRESSING)
    event = publish("rollout.step_started", subject=rollout)
    assert list(rollout_fragments(event)) == []


def test_the_actions_fragment_is_per_person(world: Any) -> None:
    rollout = make_rollout(world, state=RolloutState.PROGRESSING)
    url = f"/deployments/rollouts/{rollout.pk}/actions"
    assert "/pause" in signed_in(world.deployer).get(url).content.decode()
    assert "/pause" not in signed_in(world.viewer).get(url).content.decode()


def test_the_service_history_block_lists_its_rollouts(world: Any) -> None:
    make_rollout(world, state=RolloutState.SUCCEEDED, message="all traffic on 2.0")
    html = render_to_string(
        "deployments/partials/service_history.html", service_history(world.service)
    )
    assert 'id="deploy-history-checkout"' in html
    assert "1.0 → 2.0" in html and "Succeeded" in html
    empty = render_to_string(
        "deployments/partials/service_history.html", service_history(world.other_service)
    )
    assert "Never deployed through Signalbox" in empty


def test_the_board_pages_active_rollouts_problems_first_and_keeps_them_live(
    world: Any, watching: Any
) -> None:
    # given more rollouts under way than a page holds, one of the oldest paused
    from deployments.views import BOARD_PAGE_ROWS

    rollouts = []
    for index in range(BOARD_PAGE_ROWS + 5):
        service = Service.objects.create(slug=f"svc{index:03d}", name="s", team=world.team)
        rollouts.append(make_rollout(world, service, state=RolloutState.PROGRESSING))
    stuck = rollouts[0]
    stuck.state = RolloutState.PAUSED
    stuck.save()
    client = signed_in(world.viewer)
    # when page 1 is looked at: the paused one first, then the newest; 50 rows and a note
    first = client.get("/deployments/").content.decode()
    assert first.count('<tr id="rollout-row-') == BOARD_PAGE_ROWS
    assert first.index(f'id="rollout-row-{stuck.pk}"') < first.index(
        f'id="rollout-row-{rollouts[-1].pk}"'
    )
    assert f'id="rollout-row-{rollouts[1].pk}"' not in first  # the oldest is on page 2
    assert f"Showing 1\u2013{BOARD_PAGE_ROWS} of {BOARD_PAGE_ROWS + 5} active rollouts" in first
    assert 'href="?page=2" rel="next"' in first
    assert '<meta name="sb-live-topics" content="rollouts">' in first
    # page 2 holds the rest, and watches only its rows
    second = client.get("/deployments/", {"page": 2}).content.decode()
    assert second.count('<tr id="rollout-row-') == 5
    assert f'id="rollout-row-{rollouts[1].pk}"' in second
    assert '<meta name="sb-live-topics" content="rollouts:rows">' in second
    assert client.get("/deployments/", {"page": "two"}).status_code == 400
    assert client.get("/deployments/", {"page": 0}).status_code == 400
    # a row that moves is pushed to both (each page swaps it only if it shows it)
    watching("rollouts")
    watching("rollouts:rows")
    rollouts[1].applied_weight = 40.0
    rollouts[1].save()
    moved = rollout_fragments(publish("rollout.step_started", subject=rollouts[1]))
    tiles = {t.topic: t for t in moved if isinstance(t, Tile)}
    assert f'<tr id="rollout-row-{rollouts[1].pk}" hx-swap-oob="outerHTML">' in (
        tiles["rollouts:rows"].render()
    )
    assert "40% / 60%" in tiles["rollouts"].render()
    # a new rollout redraws page 1 with it on it; later pages are not redrawn as page 1
    service = Service.objects.create(slug="newest", name="s", team=world.team)
    newest = make_rollout(world, service, state=RolloutState.PENDING)
    created = rollout_fragments(publish("rollout.created", subject=newest))
    tiles = {t.topic: t for t in created if isinstance(t, Tile)}
    assert set(tiles) == {"rollouts"}
    board = tiles["rollouts"].render()
    assert 'id="rollout-board" hx-swap-oob="true"' in board
    assert f'id="rollout-row-{newest.pk}"' in board
    assert f'id="rollout-row-{rollouts[2].pk}"' not in board  # pushed to page 2 by it
