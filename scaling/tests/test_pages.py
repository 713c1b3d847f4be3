"""The scaling pages: the list, a group's page ("why did it scale?", instances, launches,
drain reports), its controls and who sees them, live fragments, the service page's chart,
and the queries each page costs."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, cast

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.choices import Lifecycle
from catalog.models import Instance, Service
from controlplane.events import publish
from controlplane.live import Tile, group_name
from controlplane.models import Event
from deployments.choices import RolloutState, Strategy
from deployments.models import Rollout
from health.choices import CheckStatus
from health.models import InstanceCheck
from scaling import autoscaler
from scaling.choices import (
    IN_FLIGHT,
    Ending,
    LaunchState,
    Reason,
    ScalingEvent,
    TerminationState,
)
from scaling.live import group_fragments
from scaling.models import (
    Decision,
    InstanceMetric,
    Launch,
    MetricMinute,
    Protection,
    ScalingGroup,
    ScalingMetric,
    Termination,
)

pytestmark = pytest.mark.django_db


def signed_in(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def page_of(user: Any, url: str) -> str:
    response = signed_in(user).get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def make_group(
    world: Any, service: Any = None, environment: Any = None, **fields: Any
) -> ScalingGroup:
    group = ScalingGroup.objects.create(
        service=service or world.service,
        environment=environment or world.production,
        driver="process",
        driver_config={"control_url": "http://127.0.0.1:9"},
        **{"min_instances": 1, "max_instances": 8, "desired": 2, **fields},
    )
    ScalingMetric.objects.create(group=group, source="cpu", target=60)
    return group


def instance(world: Any, port: int, service: Any = None, **fields: Any) -> Instance:
    made = Instance.objects.create(
        service=service or world.service,
        environment=world.production,
        host="127.0.0.1",
        port=port,
        version="1.4.0",
        registered_at=timezone.now() - timedelta(minutes=10),
        **fields,
    )
    InstanceCheck.objects.create(instance=made, status=CheckStatus.PASS)
    return made


@pytest.fixture
def busy(world: Any) -> ScalingGroup:
    """checkout's group after a real autoscaler tick on two instances at 90 % CPU (target
    60: scale up to 3), with a launch that never turned healthy, a finished and an open
    termination, a protected instance and one reporting work in flight."""
    group = make_group(world)
    first, second = instance(world, 7101), instance(world, 7102)
    for one in (first, second):
        InstanceMetric.objects.create(instance=one, name="cpu_percent", value=90, at=timezone.now())
    InstanceMetric.objects.create(instance=second, name=IN_FLIGHT, value=3, at=timezone.now())
    Protection.objects.create(
        instance=first, until=timezone.now() + timedelta(minutes=30), reason="batch job"
    )
    assert autoscaler.tick(group.pk).changed
    Decision.objects.create(
        group=group,
        current=5,
        recommended=2,
        desired=4,
        inputs=[{"metric": "cpu", "target": 60, "average": 21.0, "readings": 5, "missing": 0,
                 "not_ready": 0}],
        steps=["pool: 5 instance(s), 5 ready", "cpu: ceil(5 * 21 / 60) = 2",
               "largest of 1 metric(s): cpu asks 2",
               "scale-down limited to 4 by its policies in this period"],
        held_by="scale-down limited to 4 by its policies in this period",
        at=timezone.now() - timedelta(hours=1),
    )  # fmt: skip
    Launch.objects.create(
        group=group,
        driver_ref="proc-7103",
        state=LaunchState.FAILED,
        deadline_at=timezone.now(),
        message="never passed its health checks within 300s (last: HTTP 503)",
        last_probe_output={"status": "fail", "reason": "HTTP 503", "output": "db unreachable"},
    )
    started = timezone.now() - timedelta(minutes=20)
    Termination.objects.create(
        group=group,
        instance_label="checkout 127.0.0.1:7090",
        state=TerminationState.TERMINATED,
        chosen_because="lowest deletion cost (0)",
        started_at=started,
        stopped_at=started + timedelta(seconds=42),
        ending=Ending.TIMED_OUT,
        requests_during_drain=118,
        errors_during_drain=0,
        seconds_to_stop_routing=3.5,
    )
    leaving = instance(world, 7104, lifecycle=Lifecycle.DRAINING)
    Termination.objects.create(
        group=group,
        instance=leaving,
        instance_label=str(leaving),
        state=TerminationState.AWAITING_READY,
        lifecycle_deadline_at=timezone.now() + timedelta(minutes=5),
    )
    group.refresh_from_db()
    return group


def test_the_group_page_says_why_it_scaled(world: Any, busy: ScalingGroup) -> None:
    # when a viewer opens the group's page
    page = page_of(world.viewer, f"/scaling/groups/{busy.pk}/")
    # then the real tick's decision reads as metric, value vs target, formula
    decision = busy.decisions.filter(reason=Reason.AUTOSCALE, recommended=3).get()
    item = page[page.index(f'id="scaling-decision-{decision.pk}"') :]
    item = item[: item.index("</li>")]
    assert "Scale up 2 → 3" in item
    assert "<code>cpu</code>" in item and ">90 <small>average per instance" in item
    assert "60 <small>per instance" in item and "1.50" in item
    assert "cpu: ceil(2 * 90 / 60) = 3" in item
    assert "pool: 2 instance(s), 2 ready" in item
    # and the one held back by its policies says so
    assert "Held back: scale-down limited to 4 by its policies in this period" in page
    # settings sit beside HPA's names
    assert "behavior.scaleDown.stabilizationWindowSeconds" in page and "300 s" in page
    assert "type Percent, value 100, periodSeconds 15" in page
    assert "Resource cpu, target.averageUtilization" in page


def test_the_group_page_shows_instances_launches_and_drain_reports(
    world: Any, busy: ScalingGroup
) -> None:
    page = page_of(world.viewer, busy.get_absolute_url())
    # current instances: in service (one protected, one busy) and one draining
    assert "<strong>3</strong> desired" in page
    assert "<strong>2</strong> in service" in page and "1 draining" in page
    protected = page[page.index("127.0.0.1:7101") :]
    assert "until" in protected[:1500] and "(batch job)" in protected[:1500]
    busy_row = page[page.index('id="scaling-instance-') :]
    assert re.search(r"127\.0\.0\.1:7102</a>.*?<td>3</td>", busy_row, re.S)
    assert "Waiting for the instance to say it is ready" in page
    # the failed launch with its last probe output
    assert "never passed its health checks within 300s (last: HTTP 503)" in page
    assert "<pre>db unreachable</pre>" in page
    # the drain report
    report = page[page.index("checkout 127.0.0.1:7090") :]
    report = report[: report.index("</tr>")]
    ended = "It never said ready: stopped at the lifecycle timeout"
    for shown in ("lowest deletion cost (0)", "<td>118</td>", "<td>0</td>", "3.5 s", ended):
        assert shown in report, shown
    assert "42 s in all" in report


def test_viewers_and_outsiders_see_no_controls(world: Any, busy: ScalingGroup) -> None:
    url = busy.get_absolute_url()
    for persona, shown in (
        ("deployer", True),
        ("owner", True),
        ("admin", True),
        ("viewer", False),
        ("outsider", False),
    ):
        page = page_of(getattr(world, persona), url)
        assert (f'action="/scaling/groups/{busy.pk}/desired"' in page) is shown, persona
        assert (f"/scaling/groups/{busy.pk}/pause" in page) is shown, persona
        assert (f"/scaling/groups/{busy.pk}/restart" in page) is shown, persona
        assert ("Deployers and owners of payments can" in page) is not shown, persona
    # and someone signed out is sent to log in
    response = Client().get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_deployer_sets_desired_and_autoscaling_pauses(world: Any) -> None:
    # given a group autoscaling at 2, and a deployer on its page (CSRF checked)
    group = make_group(world)
    client = signed_in(world.deployer, enforce_csrf_checks=True)
    client.get(group.get_absolute_url())
    token = client.cookies["csrftoken"].value
    url = f"/scaling/groups/{group.pk}/desired"
    # when she posts without the CSRF token: refused, nothing changes
    assert client.post(url, {"desired": 5, "reason": "sale"}).status_code == 403
    # when she sets 5 with a reason through the form
    response = client.post(
        url, {"desired": 5, "reason": "flash sale at noon", "csrfmiddlewaretoken": token}
    )
    # then the page says so, the decision is recorded as manual and autoscaling is paused
    assert response.status_code == 302 and response["Location"] == group.get_absolute_url()
    group.refresh_from_db()
    assert group.desired == 5 and not group.enabled
    assert group.paused_reason == "flash sale at noon"
    decision = group.decisions.get()
    assert decision.reason == Reason.MANUAL and (decision.current, decision.desired) == (2, 5)
    assert decision.steps[0] == "flash sale at noon"
    event = Event.objects.get(action=ScalingEvent.DECIDED)
    assert event.actor_label == "deployer" and event.payload["manual"] is True
    page = client.get(response["Location"]).content.decode()
    assert "Desired set to 5 (was 2); autoscaling paused." in page
    assert 'Paused</span> <span class="sb-paused-reason">flash sale at noon' in page
    assert f'id="scaling-decision-{decision.pk}"' in page and "Set by hand" in page


def test_viewers_and_outsiders_cannot_act(world: Any) -> None:
    group = make_group(world)
    for persona in ("viewer", "outsider"):
        client = signed_in(getattr(world, persona))
        for action, body in (
            ("desired", {"desired": 5, "reason": "x"}),
            ("pause", {}),
            ("resume", {}),
            ("restart", {}),
        ):
            response = client.post(f"/scaling/groups/{group.pk}/{action}", body)
            assert response.status_code == 403, (persona, action)
            assert b"needs the deployer role" in response.content
    group.refresh_from_db()
    assert group.desired == 2 and group.enabled and group.restart_started_at is None
    assert not group.decisions.exists()
    assert signed_in(world.viewer).get("/scaling/groups/999999/").status_code == 404


def _field_error(page: str, field: str) -> str:
    """The text of the error shown inside the field's label."""
    label = page[page.index(f'for="id_{field}"') :]
    label = label[: label.index("</label>")]
    found = re.search(r'class="sb-field-error"[^>]*>([^<]+)<', label)
    return html.unescape(found.group(1)) if found else ""


def test_bad_input_is_shown_next_to_its_field(world: Any) -> None:
    group = make_group(world)
    client = signed_in(world.deployer)
    url = f"/scaling/groups/{group.pk}/desired"
    # a count that is not a number, and no reason
    response = client.post(url, {"desired": "lots", "reason": ""})
    assert response.status_code == 400
    page = response.content.decode()
    assert _field_error(page, "desired") == "Enter a whole number."
    assert _field_error(page, "reason").startswith("Say why")
    assert 'value="lots"' in page  # what she typed stays
    # a count outside the group's bounds: the control's refusal, next to the field
    response = client.post(url, {"desired": 9, "reason": "more"})
    assert response.status_code == 409
    assert "is outside checkout/production's bounds (1 to 8): change min or max first" in (
        _field_error(response.content.decode(), "desired")
    )
    # from the page's htmx form: only the form comes back, with the same error
    response = client.post(url, {"desired": -1, "reason": "x"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    fragment = response.content.decode()
    assert fragment.startswith(f'<div id="scaling-desired-{group.pk}">')
    assert "greater than or equal to 0" in _field_error(fragment, "desired")
    group.refresh_from_db()
    assert group.desired == 2 and group.enabled and not group.decisions.exists()


def test_pause_resume_and_a_restart_conflict(world: Any) -> None:
    group = make_group(world)
    client = signed_in(world.deployer)
    base = f"/scaling/groups/{group.pk}"
    # pause with a reason, from the page's htmx buttons: the actions come back, resumable
    response = client.post(f"{base}/pause", {"reason": "incident 42"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    fragment = response.content.decode()
    assert "Autoscaling paused" in fragment and f"{base}/resume" in fragment
    group.refresh_from_db()
    assert not group.enabled and group.paused_reason == "incident 42"
    # resume (plain form: back to the page)
    assert client.post(f"{base}/resume").status_code == 302
    group.refresh_from_db()
    assert group.enabled and group.paused_reason == ""
    # a second rolling restart while the first runs is refused, and says why
    assert client.post(f"{base}/restart", {"reason": "leak"}).status_code == 302
    response = client.post(f"{base}/restart", HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    assert "Not done: checkout/production is already restarting" in response.content.decode()
    page = client.post(f"{base}/restart", follow=True).content.decode()
    assert "is already restarting" in page and "Rolling restart</span>" in page


def test_the_list_shows_desired_running_paused_and_the_last_decision(world: Any) -> None:
    # given checkout's group (2 running, autoscaled up) and indexer's, paused
    group = make_group(world)
    for port in (7101, 7102):
        instance(world, port)
    instance(world, 7103, lifecycle=Lifecycle.LAUNCHING)
    Decision.objects.create(group=group, current=2, desired=3, steps=["cpu: ... = 3"])
    other = make_group(world, world.other_service, enabled=False, paused_reason="by hand")
    # when anyone signed in opens the list
    page = page_of(world.outsider, "/scaling/")
    # then both groups are there, each with its numbers and state
    row = page[page.index(f'id="scaling-row-{group.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "<strong>2</strong>" in row and "+1 launching" in row and "Autoscaling" in row
    assert "2 → 3" in row and "cpu: ... = 3" in row
    assert f'id="scaling-row-{other.pk}"' in page and "by hand" in page
    assert '<meta name="sb-live-topics" content="scaling">' in page
    # a team's list holds only its groups, and listens to that team's topic
    mine = page_of(world.viewer, "/scaling/?team=payments")
    assert f'id="scaling-row-{group.pk}"' in mine and f'id="scaling-row-{other.pk}"' not in mine
    assert '<meta name="sb-live-topics" content="scaling:team.payments">' in mine
    # and the top navigation leads there
    assert '<a href="/scaling/" aria-current="page">Scaling</a>' in page
    assert 'href="/scaling/">Scaling</a>' in page_of(world.viewer, "/")


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_group_page_costs_the_same_queries_for_3_or_300_decisions(world: Any) -> None:
    group = make_group(world)
    client = signed_in(world.deployer)

    def grow(decisions: int, instances: int) -> None:
        start = Decision.objects.count()
        Decision.objects.bulk_create(
            Decision(group=group, current=i % 5, desired=i % 5 + 1, steps=["s"],
                     inputs=[{"metric": "cpu", "target": 60, "average": 70}])
            for i in range(start, decisions)
        )  # fmt: skip
        for port in range(Instance.objects.count(), instances):
            one = instance(world, 8000 + port)
            InstanceMetric.objects.create(instance=one, name=IN_FLIGHT, value=1, at=timezone.now())
            Launch.objects.create(group=group, instance=one, driver_ref=f"p{port}",
                                  deadline_at=timezone.now())  # fmt: skip
            Termination.objects.create(group=group, instance_label=f"old {port}",
                                       state=TerminationState.TERMINATED)  # fmt: skip

    grow(3, 2)
    few = _queries(client, group.get_absolute_url())
    grow(300, 40)
    many = _queries(client, group.get_absolute_url())
    assert many == few
    assert few <= 16, few
    assert _queries(client, group.get_absolute_url() + "?page=5") == few


def test_the_list_costs_the_same_queries_for_2_or_40_groups(world: Any) -> None:
    client = signed_in(world.viewer)

    def grow(count: int) -> None:
        for index in range(ScalingGroup.objects.count(), count):
            service = Service.objects.create(slug=f"svc{index}", name="s", team=world.team)
            group = make_group(world, service)
            instance(world, 9000 + index, service=service)
            Decision.objects.create(group=group, current=1, desired=2)

    grow(2)
    few = _queries(client, "/scaling/")
    grow(40)
    assert _queries(client, "/scaling/") == few
    assert few <= 8, few


@pytest.fixture
def watching() -> Iterator[Any]:
    """watching(topic): a page subscribed to the topic, as a web process's hub subscribes."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    config = cast(dict[str, Any], settings.CHANNEL_LAYERS["default"])["CONFIG"]

    def watch(topic: str) -> None:
        pubsub.subscribe(f"{config['prefix']}__group__{group_name(topic)}")
        pubsub.get_message(timeout=1)  # the subscription is confirmed

    yield watch
    pubsub.close()


def test_scaling_events_push_the_group_page_and_its_row(world: Any, watching: Any) -> None:
    # given a group with a page and the lists open
    group = make_group(world)
    for topic in (f"scaling:{group.pk}", "scaling", "scaling:team.payments"):
        watching(topic)
    Decision.objects.create(group=group, current=2, desired=3, steps=["cpu: ... = 3"])
    group.desired = 3
    group.save()
    event = publish(ScalingEvent.DECIDED, subject=group, message="scale up 2 -> 3")
    # when the event is rendered
    tiles = [t for t in group_fragments(event) if isinstance(t, Tile)]
    by_key = {(t.topic, t.key): t for t in tiles}
    # then the group page gets its state and its history, the lists the group's row
    assert set(by_key) == {
        (f"scaling:{group.pk}", "summary"),
        (f"scaling:{group.pk}", "history"),
        ("scaling", f"row-{group.pk}"),
        ("scaling:team.payments", f"row-{group.pk}"),
    }
    summary = by_key[(f"scaling:{group.pk}", "summary")].render()
    assert f'<div id="scaling-summary-{group.pk}" data-live-refresh hx-swap-oob="true">' in summary
    assert "<strong>3</strong> desired" in summary
    # a pushed fragment is everyone's: the controls are fetched per person instead
    assert f'hx-get="/scaling/groups/{group.pk}/actions"' in summary
    assert "/pause" not in summary.replace(f"/scaling/groups/{group.pk}/actions", "")
    history = by_key[(f"scaling:{group.pk}", "history")].render()
    assert f'id="scaling-history-{group.pk}"' in history and "2 → 3" in history
    row = by_key[("scaling", f"row-{group.pk}")].render()
    assert row.startswith(f'<template><tr id="scaling-row-{group.pk}" hx-swap-oob="outerHTML">')
    # an instance's own event (it protected itself) reaches its group's page too
    protected = instance(world, 7101)
    event = publish(ScalingEvent.PROTECTED, subject=protected, message="protected")
    assert (f"scaling:{group.pk}", "summary") in {
        (t.topic, t.key) for t in group_fragments(event) if isinstance(t, Tile)
    }


def test_the_actions_fragment_is_per_person(world: Any) -> None:
    group = make_group(world)
    url = f"/scaling/groups/{group.pk}/actions"
    assert "/pause" in signed_in(world.deployer).get(url).content.decode()
    assert "/pause" not in signed_in(world.viewer).get(url).content.decode()


def test_nothing_is_rendered_for_pages_nobody_watches(world: Any) -> None:
    group = make_group(world)
    assert list(group_fragments(publish(ScalingEvent.PAUSED, subject=group))) == []


# -- the service page's chart ---------------------------------------------------------------


def history(world: Any, group: ScalingGroup, decisions: int = 3) -> None:
    """Decisions, launches into service, a drain, reported CPU, scale events and a rollout
    over the last hours."""
    now = timezone.now()
    for i in range(decisions):
        at = now - timedelta(minutes=300 - i * (280 / max(decisions, 1)))
        Decision.objects.create(group=group, at=at, current=2, desired=3 + i % 2)
        Event.objects.create(action=ScalingEvent.DECIDED, service=group.service,
                             environment=group.environment, message=f"scale to {3 + i % 2}",
                             created_at=at)  # fmt: skip
    Event.objects.filter(action=ScalingEvent.DECIDED).update(created_at=now - timedelta(hours=2))
    one = instance(world, 7101, service=group.service)
    Launch.objects.create(
        group=group,
        instance=one,
        driver_ref="p1",
        deadline_at=now,
        state=LaunchState.IN_SERVICE,
        in_service_at=now - timedelta(hours=2),
    )
    Termination.objects.create(
        group=group,
        instance_label="old",
        started_at=now - timedelta(hours=1),
        state=TerminationState.TERMINATED,
    )
    this_minute = now.replace(second=0, microsecond=0)
    MetricMinute.objects.bulk_create(
        MetricMinute(
            instance=one,
            name="cpu_percent",
            total=140,
            count=2,
            minute=this_minute - timedelta(minutes=m),
        )
        for m in range(0, 120, 10)
    )
    started = now - timedelta(hours=3)
    Rollout.objects.create(
        team=group.service.team,
        service=group.service,
        environment=group.environment,
        from_version="1.4.0",
        to_version="1.5.0",
        strategy=Strategy.CANARY,
        steps=[],
        state=RolloutState.SUCCEEDED,
        started_at=started,
        finished_at=started + timedelta(minutes=20),
    )


def test_the_service_page_charts_desired_actual_and_the_metric(world: Any) -> None:
    # given checkout's group with some hours of history
    group = make_group(world)
    history(world, group)
    # when its page is opened (production is the default environment)
    page = page_of(world.viewer, "/catalog/services/checkout/")
    chart = page[page.index('id="service-scaling"') :]
    chart = chart[: chart.index("</section>")]
    # then the chart is drawn on the server, with its lines, markers and a link to the group
    assert f'href="/scaling/groups/{group.pk}/"' in chart
    for part in ('class="sb-desired"', 'class="sb-actual"', 'class="sb-metric"',
                 'class="sb-target"', 'data-kind="decided"', 'class="sb-deploy-mark"'):  # fmt: skip
        assert part in chart, part
    assert ">1.5.0</text>" in chart and "rollout #" in chart and "finished (succeeded)" in chart
    assert "<strong>2</strong> desired, <strong>1</strong> in service" in chart
    assert "cpu per instance (right axis)" in chart
    # the in-service line steps: 1 now, 0 before the drain... counted back through changes
    points = re.search(r'class="sb-actual" points="([^"]+)"', chart)
    assert points is not None and len(points.group(1).split()) >= 6


def test_a_service_without_a_group_has_no_scaling_chart(world: Any) -> None:
    page = page_of(world.viewer, "/catalog/services/checkout/")
    assert 'id="service-scaling"' not in page
    # and one with a group in another environment only links there
    make_group(world, environment=world.staging)
    page = page_of(world.viewer, "/catalog/services/checkout/")
    assert "No scaling group for checkout in production" in page and "?env=staging" in page


def test_the_service_chart_costs_the_same_queries_for_3_or_300_decisions(world: Any) -> None:
    group = make_group(world)
    client = signed_in(world.viewer)
    history(world, group, decisions=3)
    few = _queries(client, "/catalog/services/checkout/")
    now = timezone.now()
    Decision.objects.bulk_create(
        Decision(group=group, at=now - timedelta(seconds=i), current=2, desired=2 + i % 3)
        for i in range(300)
    )
    assert _queries(client, "/catalog/services/checkout/") == few


def test_the_scaling_chart_marks_incidents_inside_its_window_only(world: Any) -> None:
    from alerts.choices import IncidentState
    from dashboard.tests.conftest import incident

    # given checkout's group, an incident that fired 2 h ago and was resolved 1 h ago, one
    # resolved 8 h ago (before the chart's 6 h) and one firing since 10 minutes ago
    group = make_group(world)
    history(world, group)
    now = timezone.now()
    inside = incident(world, world.service, "checkout is slow", state=IncidentState.RESOLVED)
    before = incident(world, world.service, "checkout was down", state=IncidentState.RESOLVED)
    firing = incident(world, world.service, "checkout is down")
    for made, fired, resolved in (
        (inside, now - timedelta(hours=2), now - timedelta(hours=1)),
        (before, now - timedelta(hours=9), now - timedelta(hours=8)),
        (firing, now - timedelta(minutes=10), None),
    ):
        type(made).objects.filter(pk=made.pk).update(
            fire_at=fired, fired_at=fired, resolved_at=resolved
        )
    # when its page is opened
    page = page_of(world.viewer, "/catalog/services/checkout/")
    chart = page[page.index('id="service-scaling"') :]
    chart = chart[: chart.index("</section>")]
    # then the two incidents in the window are bands on the time axis, the older one is not
    bands = re.findall(
        r'<g class="sb-incident-mark" data-state="(\w+)"><title>([^<]+)</title>'
        r'<rect x="([\d.]+)" y="\d+" width="([\d.]+)"',
        chart,
    )
    found = sorted((s, html.unescape(title).split(" incident ")[1]) for s, title, *_ in bands)
    assert found == [
        ("firing", f"#{firing.pk} fired, firing"),
        ("resolved", f"#{inside.pk} fired, {(now - timedelta(hours=1)):%H:%M:%S} resolved"),
    ]
    assert f">#{before.pk}</text>" not in chart
    # the resolved one spans an hour of the six (a sixth of the plot), the firing one runs to now
    spans = {state: (float(x), float(width)) for state, _, x, width in bands}
    assert abs(spans["resolved"][1] - (720 - 34 - 46) / 6) < 2
    assert abs(sum(spans["firing"]) - (720 - 46)) < 1
    assert "2 incidents" in chart and "incident, from firing to resolved" in chart
    # and the deploy marks are still there beside them
    assert 'class="sb-deploy-mark"' in chart
