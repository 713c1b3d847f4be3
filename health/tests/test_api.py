"""Health API: reads filter and paginate on the server; specs refuse bad values per field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from catalog.models import Instance, Service
from health import rollups, services
from health.choices import ServiceStatus
from health.models import CheckSpec, InstanceCheck, MinuteRollup, ServiceHealth
from health.models.history import HISTOGRAM_SIZE


@pytest.fixture
def fleet(world: Any) -> dict[str, Any]:
    """checkout: 3 production instances (2 pass, 1 fail); indexer: 1 staging instance."""
    checks = []
    for port, status in [(8001, "pass"), (8002, "pass"), (8003, "fail")]:
        instance = Instance.objects.create(
            service=world.service, environment=world.production, host="10.0.0.1", port=port
        )
        services.ensure_checks(instance)
        InstanceCheck.objects.filter(instance=instance).update(
            status=status, last_reason=f"HTTP {port}"
        )
        checks.append(instance)
    other = Instance.objects.create(
        service=world.other_service, environment=world.staging, host="10.0.0.2", port=9000
    )
    services.ensure_checks(other)
    from health import derive

    derive.refresh(
        [(world.service.pk, world.production.pk), (world.other_service.pk, world.staging.pk)]
    )
    return {"checkout": checks, "indexer": other}


@pytest.mark.django_db
def test_service_health_filters_by_team_environment_and_status(api_as: Any, fleet: Any) -> None:
    client = api_as("viewer")
    body = client.get("/api/v1/health/services?team=payments").json()
    assert [(r["service"], r["environment"], r["status"]) for r in body["results"]] == [
        ("checkout", "production", "degraded")
    ]
    assert body["results"][0]["passing"] == 2 and body["results"][0]["failing"] == 1
    assert client.get("/api/v1/health/services?status=unknown").json()["count"] == 1
    assert (
        client.get("/api/v1/health/services?environment=staging").json()["results"][0]["service"]
        == "indexer"
    )
    bad = client.get("/api/v1/health/services?status=sideways")
    assert bad.status_code == 400
    assert "status" in bad.json()["error"]["fields"]


@pytest.mark.django_db
def test_instance_health_paginates_and_filters(api_as: Any, fleet: Any) -> None:
    client = api_as("viewer")
    page = client.get("/api/v1/health/instances?service=checkout&page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    failing = client.get("/api/v1/health/instances?status=fail").json()["results"]
    assert [(r["address"], r["last_reason"]) for r in failing] == [("10.0.0.1:8003", "HTTP 8003")]
    one = client.get(f"/api/v1/health/instances/{fleet['indexer'].pk}").json()
    assert (one["service"], one["status"], one["components"]) == ("indexer", "unknown", [])


@pytest.mark.django_db
def test_service_detail_has_every_environment_uptime_and_spec(
    api_as: Any, fleet: Any, world: Any
) -> None:
    body = api_as("viewer").get("/api/v1/health/services/checkout").json()
    assert body["team"] == "payments"
    assert [e["environment"] for e in body["environments"]] == ["production"]
    assert body["environments"][0]["uptime"] == {"24h": None, "7d": None, "30d": None}
    assert body["check"]["interval_seconds"] == 10
    assert api_as("viewer").get("/api/v1/health/services/nope").status_code == 404


@pytest.mark.django_db
def test_team_and_environment_rollups(api_as: Any, fleet: Any) -> None:
    client = api_as("viewer")
    teams = {t["team"]: t for t in client.get("/api/v1/health/teams").json()["results"]}
    payments = {e["environment"]: e for e in teams["payments"]["environments"]}
    assert payments["production"]["status"] == ServiceStatus.DEGRADED
    assert payments["production"]["services"]["degraded"] == 1
    assert payments["staging"]["status"] == ServiceStatus.UNKNOWN
    envs = {
        e["environment"]: e for e in client.get("/api/v1/health/environments").json()["results"]
    }
    assert envs["production"]["services"] == {"healthy": 0, "degraded": 1, "down": 0, "unknown": 0}


@pytest.mark.django_db
def test_history_series_and_uptime(api_as: Any, world: Any) -> None:
    # given two minutes of rollups: 10 probes with 1 failure, then 10 clean ones
    now = timezone.now()
    for minutes_ago, failures in [(3, 1), (2, 0)]:
        histogram = [0] * HISTOGRAM_SIZE
        histogram[5] = 10 - failures  # 7-10 ms
        MinuteRollup.objects.create(
            service=world.service,
            environment=world.production,
            bucket=rollups.minute_of(now - timedelta(minutes=minutes_ago)),
            count=10,
            failures=failures,
            latency_sum_ms=80.0,
            latency_max_ms=9.5,
            histogram=histogram,
        )
    # when the chart asks for the last hour
    body = (
        api_as("viewer")
        .get("/api/v1/health/history?service=checkout&environment=production&range=1h")
        .json()
    )
    # then it gets one point per minute with availability and latency percentiles
    assert body["resolution"] == "minute"
    assert [p["availability"] for p in body["points"]] == [0.9, 1.0]
    assert all(7 <= p["p50_ms"] <= 9.5 and p["max_ms"] == 9.5 for p in body["points"])
    assert body["uptime"]["24h"] == 95.0
    week = api_as("viewer").get(
        "/api/v1/health/history?service=checkout&environment=production&range=7d"
    )
    assert (
        week.json()["resolution"] == "hour" and sum(p["count"] for p in week.json()["points"]) == 20
    )


@pytest.mark.django_db
def test_history_needs_its_parameters(api_as: Any) -> None:
    response = api_as("viewer").get("/api/v1/health/history?range=2y")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"service", "environment", "range"}


@pytest.mark.django_db
def test_the_owner_changes_the_spec(api_as: Any, world: Any) -> None:
    spec = services.spec_for_service(world.service)
    response = api_as("owner").patch(
        f"/api/v1/health/checks/{spec.pk}",
        {
            "path": "/ready",
            "expected_statuses": "200-299,418",
            "json_conditions": [{"path": "$.status", "op": "eq", "value": "pass"}],
            "failure_threshold": 5,
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    spec.refresh_from_db()
    assert (spec.path, spec.failure_threshold) == ("/ready", 5)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"path": "ready"}, "path", "must start with /"),
        ({"expected_statuses": "2xx"}, "expected_statuses", "is not a status code"),
        ({"expected_statuses": "399-200"}, "expected_statuses", "low-high"),
        ({"timeout_seconds": 30, "interval_seconds": 10}, "timeout_seconds", "must not exceed"),
        ({"body_regex": "(unclosed"}, "body_regex", "not a valid regular expression"),
        (
            {"json_conditions": [{"path": "$..[", "op": "eq", "value": 1}]},
            "json_conditions",
            "not JSONPath",
        ),
        (
            {"json_conditions": [{"path": "$.a", "op": "lt", "value": "x"}]},
            "json_conditions",
            "number",
        ),
        ({"headers": {"Host": "evil.example"}}, "headers", "must not set Host"),
        ({"method": "HEAD", "body_contains": "ok"}, "method", "HEAD has no body"),
        ({"failure_threshold": 0}, "failure_threshold", "1 to 100"),
        ({"kind": "icmp"}, "kind", ""),
        ({"port": 70000}, "port", ""),
        ({"surprise": 1}, "surprise", "unknown field"),
    ],
)
@pytest.mark.django_db
def test_an_invalid_spec_is_refused_with_the_field_and_reason(
    api_as: Any, world: Any, change: dict[str, Any], field: str, reason: str
) -> None:
    spec = services.spec_for_service(world.service)
    response = api_as("owner").patch(f"/api/v1/health/checks/{spec.pk}", change, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert field in fields, fields
    assert reason in " ".join(fields[field])


@pytest.mark.django_db
def test_a_second_spec_for_a_service_is_a_conflict(api_as: Any, world: Any) -> None:
    spec = services.spec_for_service(world.service)
    response = api_as("owner").post("/api/v1/health/checks", {"service": "checkout"}, format="json")
    assert response.status_code == 409
    assert f"(id {spec.pk}): PATCH it instead" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_a_spec_needs_a_target(api_as: Any) -> None:
    response = api_as("admin").post("/api/v1/health/checks", {"path": "/x"}, format="json")
    assert response.status_code == 400
    assert "service" in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_an_outsider_cannot_change_another_teams_spec(api_as: Any, world: Any) -> None:
    spec = services.spec_for_service(world.service)
    response = api_as("outsider").patch(
        f"/api/v1/health/checks/{spec.pk}", {"path": "/x"}, format="json"
    )
    assert response.status_code == 403
    assert CheckSpec.objects.get(pk=spec.pk).path == "/health"


@pytest.mark.django_db
def test_heartbeat_creation_answers_the_ping_url_and_refuses_bad_cron(api_as: Any) -> None:
    client = api_as("owner")
    created = client.post(
        "/api/v1/health/heartbeats",
        {"service": "checkout", "name": "nightly", "schedule_kind": "cron", "cron": "0 3 * * *"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["ping_url"].endswith(f"/api/v1/heartbeats/{created.json()['uuid']}")
    again = client.post(
        "/api/v1/health/heartbeats", {"service": "checkout", "name": "nightly"}, format="json"
    )
    assert again.status_code == 409
    bad = client.post(
        "/api/v1/health/heartbeats",
        {"service": "checkout", "name": "x", "schedule_kind": "cron", "cron": "every day"},
        format="json",
    )
    assert bad.status_code == 400 and "cron" in bad.json()["error"]["fields"]


@pytest.mark.django_db
def test_maintenance_windows_are_one_off_or_recurring(api_as: Any) -> None:
    client = api_as("owner")
    recurring = client.post(
        "/api/v1/health/maintenance",
        {"service": "checkout", "cron": "0 2 * * 6", "duration_minutes": 60, "reason": "weekly"},
        format="json",
    )
    assert recurring.status_code == 201, recurring.json()
    backwards = client.post(
        "/api/v1/health/maintenance",
        {
            "service": "checkout",
            "starts_at": "2026-05-02T10:00:00Z",
            "ends_at": "2026-05-02T09:00:00Z",
        },
        format="json",
    )
    assert backwards.status_code == 400 and "ends_at" in backwards.json()["error"]["fields"]
    no_length = client.post(
        "/api/v1/health/maintenance", {"service": "checkout", "cron": "0 2 * * 6"}, format="json"
    )
    assert "duration_minutes" in no_length.json()["error"]["fields"]


@pytest.mark.django_db
def test_service_health_of_a_service_without_instances_is_unknown(world: Any) -> None:
    assert services.service_health(world.service.pk, world.production.pk) == "unknown"
    assert not ServiceHealth.objects.exists()
    assert Service.objects.count() == 2
