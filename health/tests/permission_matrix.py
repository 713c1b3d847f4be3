"""Health's rows of the permission matrix (see catalog/tests/matrix.py, docs/api.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from catalog.models import Instance
from catalog.tests.matrix import PERSONAS, Case, Row, allow, read
from health import services
from health.choices import HeartbeatStatus
from health.models import Heartbeat, MaintenanceWindow

# The owner team of checkout (payments) writes: its owners, platform admins, and a
# payments token with `write`.
TEAM_WRITERS = ("owner", "admin", "token:write")
# Heartbeat pings are anonymous by design: the uuid is the secret, so everyone gets 200.
EVERYONE = allow(*PERSONAS)


def an_instance(case: Case) -> None:
    instance = Instance.objects.create(
        service=case.world.service, environment=case.world.production, host="10.0.0.7", port=8080
    )
    services.ensure_checks(instance)
    case.made["instance"] = instance


def a_spec(case: Case) -> None:
    case.made["spec"] = services.spec_for_service(case.world.service)


def a_heartbeat(case: Case) -> None:
    case.made["heartbeat"] = Heartbeat.objects.create(
        name="nightly", service=case.world.service, period_seconds=3600
    )


def a_paused_heartbeat(case: Case) -> None:
    case.made["heartbeat"] = Heartbeat.objects.create(
        name="nightly",
        service=case.world.service,
        period_seconds=3600,
        status=HeartbeatStatus.PAUSED,
    )


def a_window(case: Case) -> None:
    now = timezone.now()
    case.made["window"] = MaintenanceWindow.objects.create(
        service=case.world.service, starts_at=now, ends_at=now + timedelta(hours=1)
    )


def window_body(case: Case) -> dict[str, Any]:
    now = timezone.now()
    return {
        "service": "checkout",
        "environment": "production",
        "starts_at": (now + timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=2)).isoformat(),
        "reason": "database upgrade",
    }


def pk_of(name: str) -> Any:
    return lambda case: {"pk": case.made[name].pk}


def key_of(case: Case) -> dict[str, Any]:
    return {"key": case.made["heartbeat"].uuid}


PERMISSION_MATRIX = [
    # health reads: everyone who may read anything
    Row(
        "health-service-list",
        "GET",
        read(),
        query="team=payments&status=healthy",
        setup=an_instance,
    ),
    Row("health-service-detail", "GET", read(), kwargs=lambda c: {"slug": "checkout"}),
    Row("health-instance-list", "GET", read(), query="service=checkout", setup=an_instance),
    Row(
        "health-instance-detail",
        "GET",
        read(),
        kwargs=lambda c: {"pk": c.made["instance"].pk},
        setup=an_instance,
    ),
    Row("health-team-list", "GET", read()),
    Row("health-environment-list", "GET", read()),
    Row("health-history", "GET", read(), query="service=checkout&environment=production&range=1h"),
    Row("health-transition-list", "GET", read(), query="service=checkout"),
    # check specs: the owner team writes
    Row("health-check-list", "GET", read(), setup=a_spec),
    Row(
        "health-check-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        body=lambda c: {"instance": c.made["instance"].pk, "path": "/ready"},
        setup=an_instance,
    ),
    Row("health-check-detail", "GET", read(), kwargs=pk_of("spec"), setup=a_spec),
    Row(
        "health-check-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=pk_of("spec"),
        body=lambda c: {"path": "/livez", "failure_threshold": 5},
        setup=a_spec,
    ),
    Row(
        "health-check-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204),
        kwargs=pk_of("spec"),
        setup=a_spec,
    ),
    # heartbeats: the owner team writes; pings are anonymous
    Row("heartbeat-list", "GET", read(), setup=a_heartbeat),
    Row(
        "heartbeat-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        body=lambda c: {"service": "checkout", "name": "hourly-sync", "period_seconds": 3600},
    ),
    Row("heartbeat-detail", "GET", read(), kwargs=pk_of("heartbeat"), setup=a_heartbeat),
    Row(
        "heartbeat-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=pk_of("heartbeat"),
        body=lambda c: {"grace_seconds": 900},
        setup=a_heartbeat,
    ),
    Row(
        "heartbeat-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204),
        kwargs=pk_of("heartbeat"),
        setup=a_heartbeat,
    ),
    Row("heartbeat-pings", "GET", read(), kwargs=pk_of("heartbeat"), setup=a_heartbeat),
    Row(
        "heartbeat-pause",
        "POST",
        allow(*TEAM_WRITERS),
        kwargs=pk_of("heartbeat"),
        setup=a_heartbeat,
    ),
    Row(
        "heartbeat-resume",
        "POST",
        allow(*TEAM_WRITERS),
        kwargs=pk_of("heartbeat"),
        setup=a_paused_heartbeat,
    ),
    Row("heartbeat-ping", "POST", EVERYONE, kwargs=key_of, setup=a_heartbeat),
    Row("heartbeat-ping-start", "POST", EVERYONE, kwargs=key_of, setup=a_heartbeat),
    Row("heartbeat-ping-fail", "POST", EVERYONE, kwargs=key_of, setup=a_heartbeat),
    Row("heartbeat-ping-log", "POST", EVERYONE, kwargs=key_of, setup=a_heartbeat),
    Row(
        "heartbeat-ping-exit",
        "POST",
        EVERYONE,
        kwargs=lambda c: {**key_of(c), "exit_code": 0},
        setup=a_heartbeat,
    ),
    # maintenance windows: the owner team writes
    Row("maintenance-list", "GET", read(), setup=a_window),
    Row("maintenance-list", "POST", allow(*TEAM_WRITERS, status=201), body=window_body),
    Row("maintenance-detail", "GET", read(), kwargs=pk_of("window"), setup=a_window),
    Row(
        "maintenance-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=pk_of("window"),
        body=lambda c: {"reason": "kernel upgrade"},
        setup=a_window,
    ),
    Row(
        "maintenance-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204),
        kwargs=pk_of("window"),
        setup=a_window,
    ),
]
