"""The markers endpoint: what the service page's charts mark, as JSON, for the health
service page and the circuit page (floors below the dashboard name it by URL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.choices import IncidentState
from dashboard.tests.conftest import incident, rollout
from deployments.models import Rollout

pytestmark = pytest.mark.django_db
URL = "/catalog/services/checkout/markers"
QUERIES = 7  # session, user, service, environments, rollouts, scale decisions, incidents


def get(user: Any, query: str) -> Any:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get(f"{URL}?{query}")


def scale_event(world: Any, at: Any, env: Any = None) -> Any:
    from scaling.models import Decision, ScalingGroup

    group, _ = ScalingGroup.objects.get_or_create(
        service=world.service, environment=env or world.production, driver="process",
        defaults={"driver_config": {"control_url": "http://127.0.0.1:7900"}, "min_instances": 1,
                  "max_instances": 5, "desired": 3},
    )  # fmt: skip
    return Decision.objects.create(group=group, current=2, desired=3, at=at)


def test_it_returns_the_deploys_scaling_and_incidents_inside_the_window(world: Any) -> None:
    now = timezone.now()
    # outside the window: a rollout that finished two days ago, a scale event of
    # yesterday, an incident resolved two days ago, and another environment's scale event
    old = rollout(world, world.service, to_version="1.4.0")
    Rollout.objects.filter(pk=old.pk).update(
        created_at=now - timedelta(days=2, hours=1), started_at=now - timedelta(days=2, hours=1),
        finished_at=now - timedelta(days=2), state="succeeded",
    )  # fmt: skip
    deploy = rollout(world, world.service, to_version="1.5.0")
    scaled = scale_event(world, now - timedelta(minutes=40))
    fired = incident(world, world.service, "checkout is down")
    scale_event(world, now - timedelta(days=1))
    resolved = incident(world, world.service, "earlier", state=IncidentState.RESOLVED)
    type(resolved).objects.filter(pk=resolved.pk).update(
        fire_at=now - timedelta(days=2, hours=1), resolved_at=now - timedelta(days=2)
    )
    scale_event(world, now - timedelta(minutes=10), env=world.staging)

    since = int((now - timedelta(hours=2)).timestamp())
    response = get(world.viewer, f"env=production&since={since}")
    assert response.status_code == 200
    body = response.json()
    assert body["environment"] == "production" and body["since"] == since
    found = {(m["kind"], m["id"]) for m in body["markers"]}
    assert found == {("deploy", deploy.pk), ("scale", scaled.pk), ("incident", fired.pk)}
    scale = next(m for m in body["markers"] if m["kind"] == "scale")
    assert scale["label"] == "2\N{RIGHTWARDS ARROW}3" and scale["state"] == "up"
    # an ISO time works too, and a wider window takes in what is older
    wide = (now - timedelta(days=3)).isoformat().replace("+", "%2B")
    markers = get(world.viewer, f"env=production&since={wide}").json()["markers"]
    assert {m["id"] for m in markers if m["kind"] == "deploy"} == {deploy.pk, old.pk}
    assert len([m for m in markers if m["kind"] == "scale"]) == 2
    assert {m["id"] for m in markers if m["kind"] == "incident"} == {fired.pk, resolved.pk}


def test_without_since_it_is_what_the_service_page_marks(world: Any) -> None:
    import json
    import re

    rollout(world, world.service)
    incident(world, world.service, "down")
    scale_event(world, timezone.now() - timedelta(days=5))
    client = Client()
    client.force_login(world.viewer)
    page = client.get("/catalog/services/checkout/?env=production").content.decode()
    found = re.search(r'<script id="deploy-markers" type="application/json">(.*?)</script>', page)
    assert found is not None
    assert get(world.viewer, "env=production").json()["markers"] == json.loads(found.group(1))


def test_it_is_seen_by_whoever_sees_the_service_page(world: Any) -> None:
    incident(world, world.service, "down")
    # the service page is open to everyone signed in (any team); so are its markers
    page = Client()
    page.force_login(world.outsider)
    assert page.get("/catalog/services/checkout/").status_code == 200
    assert len(get(world.outsider, "env=production").json()["markers"]) == 1
    # signed out: sent to sign in, like the page, and no markers
    response = get(None, "env=production")
    assert response.status_code == 302 and "/login" in response["Location"]
    assert Client().get("/catalog/services/checkout/").status_code == 302
    # a service that does not exist: 404, like the page
    client = Client()
    client.force_login(world.viewer)
    assert client.get("/catalog/services/nope/markers").status_code == 404


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("env=nowhere", "env", "no environment 'nowhere'"),
        ("env=production&since=yesterday", "since", "not unix seconds nor an ISO 8601 time"),
        ("env=production&since=2026-01-01T00:00:00", "since", "needs its offset"),
        ("env=production&since=99999999999", "since", "is in the future"),
        ("env=production&since=2026-13-45T00:00:00Z", "since", "not unix seconds"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    world: Any, query: str, field: str, reason: str
) -> None:
    response = get(world.viewer, query)
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field and reason in body["reason"]


def test_its_queries_do_not_grow_with_the_markers(world: Any) -> None:
    def count() -> int:
        client = Client()
        client.force_login(world.viewer)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"{URL}?env=production").status_code == 200
        return len(queries)

    rollout(world, world.service)
    incident(world, world.service, "down")
    few = count()
    assert few == QUERIES
    now = timezone.now()
    for n in range(20):
        scale_event(world, now - timedelta(minutes=n + 1))
        incident(world, world.service, f"down {n}")
    Rollout.objects.bulk_create([
        Rollout(team=world.team, service=world.service, environment=world.production,
                from_version="1.0", to_version=f"1.{n}", strategy="canary", steps=[],
                state="succeeded", started_at=now, finished_at=now)
        for n in range(20)
    ])  # fmt: skip
    # rollouts, scale events, incidents
    assert len(get(world.viewer, "env=production").json()["markers"]) == 62  # 21 + 20 + 21
    assert count() == few
