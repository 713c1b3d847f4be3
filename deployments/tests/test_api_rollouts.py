"""POST/GET /api/v1/rollouts: starting rollouts from CI, idempotently, within the rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.models import Event
from deployments.choices import RolloutState
from deployments.models import FreezeWindow, Rollout

pytestmark = pytest.mark.django_db


def body(**overrides: Any) -> dict[str, Any]:
    return {"service": "checkout", "environment": "production", "version": "2.0", **overrides}


def test_it_starts_a_rollout_from_the_current_version(
    world: Any, routed: Any, token_client: Any
) -> None:
    # given CI's deploy token
    client, token = token_client(world.team, ["deploy"])
    # when
    response = client.post("/api/v1/rollouts", body(reason="release 2.0"), format="json")
    # then
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["from_version"] == "1.0"
    assert data["to_version"] == "2.0"
    assert data["state"] == RolloutState.PENDING
    assert data["strategy"] == "canary"
    assert [next(iter(s)) for s in data["steps"]] == [
        "set_weight",
        "analysis",
        "set_weight",
        "analysis",
        "set_weight",
        "analysis",
        "set_weight",
    ]
    assert data["actor_label"] == f"token:payments/{token.name}"
    event = Event.objects.get(action="rollout.created")
    assert event.actor_token == token
    assert "release 2.0" in event.message


def test_a_retried_call_with_the_same_key_returns_the_same_rollout(
    world: Any, routed: Any, api_as: Any
) -> None:
    client = api_as("deployer")
    first = client.post("/api/v1/rollouts", body(idempotency_key="ci-run-42"), format="json")
    again = client.post("/api/v1/rollouts", body(idempotency_key="ci-run-42"), format="json")
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Rollout.objects.count() == 1


def test_a_key_reused_for_another_rollout_is_a_conflict(
    world: Any, routed: Any, api_as: Any
) -> None:
    client = api_as("deployer")
    client.post("/api/v1/rollouts", body(idempotency_key="k1"), format="json")
    response = client.post(
        "/api/v1/rollouts", body(version="3.0", idempotency_key="k1"), format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_a_second_active_rollout_is_refused_with_the_active_one_named(
    world: Any, routed: Any, api_as: Any
) -> None:
    client = api_as("deployer")
    first = client.post("/api/v1/rollouts", body(), format="json").json()
    response = client.post("/api/v1/rollouts", body(version="3.0"), format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "rollout_active"
    assert f"#{first['id']}" in error["message"]
    assert f"/api/v1/rollouts/{first['id']}/abort" in error["message"]


def test_the_database_allows_one_active_rollout_per_service_and_environment(
    world: Any, routed: Any
) -> None:
    common = {
        "team": world.team,
        "service": world.service,
        "environment": world.production,
        "strategy": "canary",
        "steps": [{"set_weight": 100}],
    }
    Rollout.objects.create(to_version="2.0", **common)
    with pytest.raises(IntegrityError), transaction.atomic():
        Rollout.objects.create(to_version="3.0", **common)
    # a finished one does not count
    Rollout.objects.create(to_version="1.5", state=RolloutState.SUCCEEDED, **common)


def test_a_freeze_refuses_with_423_and_the_reason(world: Any, routed: Any, api_as: Any) -> None:
    # given production is frozen
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=world.production,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        reason="Black Friday",
    )
    # when a deployer starts a rollout, with or without an override
    plain = api_as("deployer").post("/api/v1/rollouts", body(), format="json")
    overridden = api_as("deployer").post(
        "/api/v1/rollouts", body(freeze_override_reason="hotfix"), format="json"
    )
    # then both are refused, saying why
    assert plain.status_code == 423
    assert "frozen until" in plain.json()["error"]["message"]
    assert "Black Friday" in plain.json()["error"]["message"]
    assert plain.json()["error"]["code"] == "frozen"
    assert overridden.status_code == 423
    assert "Only an owner" in overridden.json()["error"]["message"]
    # and an owner may override, with the reason recorded
    owner = api_as("owner").post(
        "/api/v1/rollouts", body(freeze_override_reason="payment outage hotfix"), format="json"
    )
    assert owner.status_code == 201
    assert owner.json()["freeze_override_reason"] == "payment outage hotfix"
    event = Event.objects.get(action="rollout.created")
    assert event.payload["freeze_override_reason"] == "payment outage hotfix"


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"service": "nope"}, "service", "no service 'nope'"),
        ({"environment": "moon"}, "environment", "no environment 'moon'"),
        ({"version": "1.0"}, "version", "already runs 1.0"),
        ({"strategy": "yolo"}, "strategy", "is not a valid choice"),
        ({"steps": [{"set_weight": 120}]}, "steps", "steps.0.set_weight"),
        ({"steps": [{"jump": 1}]}, "steps", "unknown step 'jump'"),
        (
            {"steps": [{"analysis": {"metrics": [{"provider": "tea-leaves"}]}}]},
            "steps",
            "steps.0.analysis.metrics.0.provider",
        ),
        (
            {"steps": [{"analysis": {"metrics": [{"provider": "webhook"}]}}]},
            "steps",
            "url: required for the webhook provider",
        ),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_bad_input_names_the_field_and_the_fix(
    world: Any, routed: Any, api_as: Any, overrides: dict[str, Any], field: str, words: str
) -> None:
    response = api_as("deployer").post("/api/v1/rollouts", body(**overrides), format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert field in fields, fields
    assert any(words in reason for reason in fields[field]), fields


def test_a_service_without_a_traffic_router_is_told_so(world: Any, api_as: Any) -> None:
    response = api_as("deployer").post("/api/v1/rollouts", body(), format="json")
    assert response.status_code == 400
    assert (
        "no traffic router routes checkout in production"
        in (response.json()["error"]["fields"]["environment"][0])
    )


def test_it_lists_and_filters_rollouts(world: Any, routed: Any, api_as: Any) -> None:
    api_as("deployer").post("/api/v1/rollouts", body(), format="json")
    client = api_as("outsider")  # every signed-in person reads every team's rollouts
    everything = client.get("/api/v1/rollouts").json()
    active = client.get("/api/v1/rollouts?active=true&service=checkout").json()
    other = client.get("/api/v1/rollouts?service=indexer").json()
    assert everything["count"] == active["count"] == 1
    assert other["count"] == 0


def test_it_filters_rollouts_by_team_environment_and_state(
    world: Any, routed: Any, api_as: Any
) -> None:
    # given one rollout that ended and one still pending
    ended = api_as("deployer").post("/api/v1/rollouts", body(version="1.5"), format="json")
    Rollout.objects.filter(pk=ended.json()["id"]).update(state=RolloutState.ABORTED)
    api_as("deployer").post("/api/v1/rollouts", body(), format="json")
    client = api_as("viewer")

    def versions(query: str) -> list[str]:
        response = client.get(f"/api/v1/rollouts?{query}")
        assert response.status_code == 200, response.json()
        return sorted(r["to_version"] for r in response.json()["results"])

    # when filtered, then
    assert versions("team=payments&environment=production") == ["1.5", "2.0"]
    assert versions("team=search") == []
    assert versions("environment=staging") == []
    assert versions("state=aborted") == ["1.5"]
    assert versions("active=1") == ["2.0"]
    assert versions("active=false") == ["1.5", "2.0"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("state=exploded", "state"),
        ("service=nowhere", "service"),
        ("environment=moon", "environment"),
        ("team=nobody", "team"),
    ],
)
def test_it_answers_400_naming_a_bad_filter_value(
    world: Any, api_as: Any, query: str, parameter: str
) -> None:
    response = api_as("viewer").get(f"/api/v1/rollouts?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("invalid", [parameter])


def test_the_detail_has_steps_and_measurements(world: Any, routed: Any, api_as: Any) -> None:
    from deployments.models import AnalysisRun, Measurement

    created = api_as("deployer").post("/api/v1/rollouts", body(), format="json").json()
    rollout = Rollout.objects.get(pk=created["id"])
    run = AnalysisRun.objects.create(rollout=rollout, step_index=1, metrics=[])
    Measurement.objects.create(
        run=run,
        rollout=rollout,
        metric="errors",
        provider="lb_stats",
        value=7.5,
        threshold="5xx <= 5%",
        verdict="fail",
        reason="5xx rate 7.50% > 5%",
    )
    data = api_as("viewer").get(f"/api/v1/rollouts/{rollout.pk}").json()
    measurement = data["analysis_runs"][0]["measurements"][0]
    assert measurement == {
        **measurement,
        "metric": "errors",
        "value": 7.5,
        "verdict": "fail",
        "reason": "5xx rate 7.50% > 5%",
        "threshold": "5xx <= 5%",
    }
