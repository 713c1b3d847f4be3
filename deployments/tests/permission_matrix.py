"""Deployments' rows of the permission matrix (see catalog/tests/matrix.py, docs/api.md)."""

from __future__ import annotations

from typing import Any

from catalog.models import Instance
from catalog.tests.matrix import Case, Row, allow, read
from deployments.choices import PauseCause, RolloutState, RouterKind
from deployments.models import Rollout, TrafficRoute, TrafficRouter

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
]
