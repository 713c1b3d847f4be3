"""Deployments' rows of the permission matrix (see catalog/tests/matrix.py, docs/api.md)."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from django.utils import timezone

from catalog.models import Instance
from catalog.tests.matrix import Case, Row, allow, read
from deployments.choices import PauseCause, RolloutState, RouterKind
from deployments.models import (
    FreezeWindow,
    RecurringFreezeWindow,
    Rollout,
    TrafficRoute,
    TrafficRouter,
)

# Who may start and act on payments' rollouts: its deployers and owners, platform admins,
# and a payments token with `deploy`. Everyone signed in reads every team's rollouts.
DEPLOYERS = ("deployer", "owner", "admin", "token:deploy")


def a_route(case: Case) -> None:
    world = case.world
    for port, version in ((9001, "1.0"), (9002, "2.0")):
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host="127.0.0.1",
            port=port,
            version=version,
        )
    router = TrafficRouter.objects.create(
        name="matrix-haproxy", kind=RouterKind.HAPROXY, connection={"socket": "/nonexistent"}
    )
    case.made["route"] = TrafficRoute.objects.create(
        router=router, service=world.service, environment=world.production, backend="be"
    )


def a_rollout(state: str = RolloutState.PENDING, paused_for: str = "") -> Any:
    def setup(case: Case) -> None:
        a_route(case)
        world = case.world
        case.made["rollout"] = Rollout.objects.create(
            team=world.team,
            service=world.service,
            environment=world.production,
            from_version="1.0",
            to_version="2.0",
            strategy="canary",
            steps=[{"set_weight": 50}, {"set_weight": 100}],
            router=case.made["route"],
            state=state,
            paused_for=paused_for,
        )

    return setup


def rollout_id(case: Case) -> dict[str, Any]:
    return {"pk": case.made["rollout"].pk}


def action_row(action: str, setup: Any) -> Row:
    return Row(
        f"rollout-{action}",
        "POST",
        allow(*DEPLOYERS),
        kwargs=rollout_id,
        body=lambda c: {},
        setup=setup,
    )


def a_freeze(case: Case) -> None:
    now = timezone.now()
    case.made["freeze"] = FreezeWindow.objects.create(
        environment=case.world.production,
        starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=2),
        reason="holidays",
    )


def a_recurring_freeze(case: Case) -> None:
    case.made["recurring"] = RecurringFreezeWindow.objects.create(
        environment=case.world.production,
        name="weekend",
        days=["fri"],
        start_time=time(16, 0),
        duration_minutes=64 * 60,
        timezone="Europe/Berlin",
        reason="nobody on call",
    )


def freeze_id(case: Case) -> dict[str, Any]:
    return {"pk": case.made["freeze"].pk}


def recurring_id(case: Case) -> dict[str, Any]:
    return {"pk": case.made["recurring"].pk}


def freeze_body(case: Case) -> dict[str, Any]:
    now = timezone.now()
    return {
        "environment": "production",
        "starts_at": (now + timedelta(days=3)).isoformat(),
        "ends_at": (now + timedelta(days=4)).isoformat(),
        "reason": "holidays",
    }


def recurring_body(case: Case) -> dict[str, Any]:
    return {
        "environment": "production",
        "name": "night",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "start_time": "22:00",
        "duration_minutes": 480,
        "timezone": "Europe/Berlin",
        "reason": "batch jobs",
    }


# Freeze windows are platform-wide, like environments: every reader reads, admins change.
FREEZE_ROWS = [
    Row("freeze-window-list", "GET", read(), setup=a_freeze),
    Row("freeze-window-list", "POST", allow("admin", status=201), body=freeze_body),
    Row("freeze-window-detail", "GET", read(), kwargs=freeze_id, setup=a_freeze),
    Row(
        "freeze-window-detail",
        "PATCH",
        allow("admin"),
        kwargs=freeze_id,
        body=lambda c: {"reason": "year end"},
        setup=a_freeze,
    ),
    Row(
        "freeze-window-detail",
        "DELETE",
        allow("admin", status=204),
        kwargs=freeze_id,
        setup=a_freeze,
    ),
    Row("recurring-freeze-window-list", "GET", read(), setup=a_recurring_freeze),
    Row("recurring-freeze-window-list", "POST", allow("admin", status=201), body=recurring_body),
    Row(
        "recurring-freeze-window-detail",
        "GET",
        read(),
        kwargs=recurring_id,
        setup=a_recurring_freeze,
    ),
    Row(
        "recurring-freeze-window-detail",
        "PATCH",
        allow("admin"),
        kwargs=recurring_id,
        body=lambda c: {"days": ["sat"]},
        setup=a_recurring_freeze,
    ),
    Row(
        "recurring-freeze-window-detail",
        "DELETE",
        allow("admin", status=204),
        kwargs=recurring_id,
        setup=a_recurring_freeze,
    ),
]


PERMISSION_MATRIX = [
    Row("rollout-list", "GET", read()),
    Row(
        "rollout-list",
        "POST",
        allow(*DEPLOYERS, status=201),
        body=lambda c: {"service": "checkout", "environment": "production", "version": "2.0"},
        setup=a_route,
    ),
    Row("rollout-detail", "GET", read(), kwargs=rollout_id, setup=a_rollout()),
    action_row("pause", a_rollout()),
    action_row("resume", a_rollout(RolloutState.PAUSED, PauseCause.MANUAL)),
    action_row("promote", a_rollout()),
    action_row("abort", a_rollout()),
    action_row("retry", a_rollout(RolloutState.ABORTED)),
    action_row("rollback", a_rollout()),
    *FREEZE_ROWS,
]
