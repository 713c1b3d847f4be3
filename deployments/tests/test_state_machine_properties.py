"""The state machine as properties: any sequence of actions and verdicts ends where it should.

The router and the analysis here are in memory (a real HAProxy per example would make
hundreds of examples take minutes; the drivers and providers have their own real tests).
Everything else is the real reconciler and actions against PostgreSQL.
"""

from __future__ import annotations

from collections import deque
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from catalog.models import Instance
from catalog.permissions import Access
from deployments import actions, reconciler
from deployments.analysis import PROVIDERS, AnalysisProvider, Context, Result
from deployments.choices import (
    ACTIVE_STATES,
    ROLLBACK_ENDINGS,
    AnalysisState,
    RolloutState,
    Verdict,
)
from deployments.drivers import DRIVERS
from deployments.drivers.base import Applied, Driver, DriverError, Split, Target, TargetStats
from deployments.drivers.base import split_weights as weights_for
from deployments.models import AnalysisRun, Measurement, Rollout
from deployments.tests.conftest import make_route

pytestmark = pytest.mark.django_db


class MemoryRouter(Driver):
    """Per-server weights kept in memory, split exactly as the HAProxy driver splits them."""

    servers: dict[str, int] = {}
    canary_addresses: set[str] = set()
    failures = 0

    def apply(self, split: Split, state: dict[str, Any]) -> Applied:
        if MemoryRouter.failures:
            MemoryRouter.failures -= 1
            raise DriverError("injected router failure")
        stable, canary = weights_for(split.canary_percent, len(split.stable), len(split.canary))
        MemoryRouter.servers = {t.address: stable for t in split.stable}
        MemoryRouter.servers.update({t.address: canary for t in split.canary})
        MemoryRouter.canary_addresses = {t.address for t in split.canary}
        return self.read(split, state)

    def read(self, split: Split, state: dict[str, Any]) -> Applied:
        return Applied(canary_percent=canary_share(), weights=dict(MemoryRouter.servers))

    def drain(self, targets: tuple[Target, ...], state: dict[str, Any]) -> None:
        for target in targets:
            MemoryRouter.servers[target.address] = 0

    def ready(self, targets: tuple[Target, ...], state: dict[str, Any]) -> None:
        return None

    def stats(self, targets: tuple[Target, ...], state: dict[str, Any]) -> dict[str, TargetStats]:
        return {}


def canary_share() -> float:
    total = sum(MemoryRouter.servers.values())
    canary = sum(w for a, w in MemoryRouter.servers.items() if a in MemoryRouter.canary_addresses)
    return round(100.0 * canary / total, 2) if total else 0.0


class Scripted(AnalysisProvider):
    """Verdicts the test queues; passes when the queue is empty."""

    verdicts: deque[str] = deque()

    def measure(self, ctx: Context) -> Result:
        verdict = Scripted.verdicts.popleft() if Scripted.verdicts else Verdict.PASS
        return Result(Verdict(verdict), f"scripted {verdict}", value=1.0)


@pytest.fixture
def machine(world: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(DRIVERS, "haproxy", MemoryRouter)
    monkeypatch.setitem(PROVIDERS, "canary_health", Scripted())
    make_route(world, {"socket": "/unused"})
    for port, version in ((9001, "1.0"), (9002, "1.0"), (9003, "2.0")):
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host="127.0.0.1",
            port=port,
            version=version,
        )
    return world


STEP_PLANS = [
    [
        {"set_weight": 10},
        {"analysis": {}},
        {"set_weight": 50},
        {"analysis": {}},
        {"set_weight": 100},
    ],
    [
        {"set_weight": 25},
        {"pause": {}},
        {"analysis": {}},
        {"pause": {"seconds": 30}},
        {"set_weight": 100},
    ],
    [
        {"preview": {}},
        {"analysis": {}},
        {"set_weight": 100},
        {"pause": {"seconds": 60}},
        {"drain_stable": {}},
    ],
]
METRIC = {"provider": "canary_health", "interval": 5, "success_count": 1, "failure_limit": 0}

OPS = st.one_of(
    st.just(("tick",)),
    st.tuples(
        st.just("verdict"), st.sampled_from([Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE])
    ),
    st.tuples(st.just("act"), st.sampled_from(["pause", "resume", "abort", "retry", "rollback"])),
    st.tuples(st.just("promote"), st.booleans()),
    st.tuples(st.just("router_fails"), st.integers(1, 3)),
    st.just(("deadline",)),
)


def jump_clock(rollout_id: int) -> None:
    """Make whatever the rollout waits for due now (instead of sleeping)."""
    now = timezone.now()
    Rollout.objects.filter(pk=rollout_id, next_action_at__isnull=False).update(next_action_at=now)
    Rollout.objects.filter(pk=rollout_id, pause_until__isnull=False).update(pause_until=now)
    for run in AnalysisRun.objects.filter(rollout_id=rollout_id, state=AnalysisState.RUNNING):
        for progress in run.progress.values():
            progress["next_at"] = now.isoformat()
        run.save(update_fields=["progress"])


class Oracle:
    """The ending the inputs call for: the first cause since the last restart, else success."""

    def __init__(self) -> None:
        self.cause: str | None = None

    def saw(self, cause: str) -> None:
        self.cause = self.cause or cause

    @property
    def expected(self) -> str:
        return self.cause or RolloutState.SUCCEEDED


def tick(rollout_id: int, oracle: Oracle) -> None:
    jump_clock(rollout_id)
    before = Rollout.objects.get(pk=rollout_id)
    seen = set(Measurement.objects.filter(rollout_id=rollout_id).values_list("pk", flat=True))
    deadline_fires = (
        before.state in ACTIVE_STATES
        and before.state != RolloutState.ROLLING_BACK
        and before.deadline_at is not None
        and before.deadline_at <= timezone.now()
    )
    reconciler.advance(rollout_id)
    if deadline_fires:
        oracle.saw(RolloutState.FAILED)
    fresh = Measurement.objects.filter(rollout_id=rollout_id).exclude(pk__in=seen)
    if fresh.filter(verdict=Verdict.FAIL).exists():
        oracle.saw(RolloutState.ROLLED_BACK)


def check_invariants(rollout: Rollout) -> None:
    # weights always add up to 100, on the rollout and on the router
    if rollout.applied_weight is not None:
        assert 0 <= rollout.applied_weight <= 100
        assert rollout.applied_weight + (rollout.stable_weight or 0) == pytest.approx(100)
    if MemoryRouter.servers:
        stable = 100 - canary_share()
        assert canary_share() + stable == pytest.approx(100)
    # an analysis only passes on passes: never on no data
    for run in AnalysisRun.objects.filter(rollout=rollout, state=AnalysisState.PASSED):
        last = run.measurements.order_by("-measured_at", "-id").first()
        assert last is not None and last.verdict == Verdict.PASS
    # no data pauses at once
    latest = Measurement.objects.filter(rollout=rollout).order_by("-id").first()
    if (
        latest is not None
        and latest.verdict == Verdict.INCONCLUSIVE
        and latest.run.state == AnalysisState.RUNNING
        and rollout.analysis_runs.filter(pk=latest.run_id).exists()
        and rollout.state == RolloutState.PROGRESSING
    ):
        raise AssertionError("an inconclusive measurement did not pause the rollout")


def finish(rollout_id: int, oracle: Oracle) -> Rollout:
    """Let the rollout run to its end with good data and a working router."""
    Scripted.verdicts.clear()
    MemoryRouter.failures = 0
    access = Access(user=_deployer())
    for _ in range(60):
        rollout = Rollout.objects.get(pk=rollout_id)
        if rollout.is_terminal:
            return rollout
        if rollout.state == RolloutState.PAUSED:
            actions.act(rollout_id, "resume", access=access)
        tick(rollout_id, oracle)
    raise AssertionError(f"rollout did not finish: {Rollout.objects.get(pk=rollout_id).state}")


def _deployer() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="deployer")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=st.sampled_from(STEP_PLANS), ops=st.lists(OPS, max_size=25))
def test_any_sequence_ends_as_its_actions_and_verdicts_say(
    machine: Any, plan: list[dict[str, Any]], ops: list[tuple[Any, ...]]
) -> None:
    # given a fresh rollout each example
    Rollout.objects.all().delete()
    MemoryRouter.servers, MemoryRouter.canary_addresses, MemoryRouter.failures = {}, set(), 0
    Scripted.verdicts.clear()
    access = Access(user=machine.deployer)
    rollout, _ = actions.start_rollout(
        access=access,
        service=machine.service,
        environment=machine.production,
        version="2.0",
        steps=plan,
        analysis=[METRIC],
    )
    oracle = Oracle()
    # when the ops happen
    for op in ops:
        current = Rollout.objects.get(pk=rollout.pk)
        if op[0] == "tick":
            tick(rollout.pk, oracle)
        elif op[0] == "verdict":
            Scripted.verdicts.append(op[1])
        elif op[0] == "router_fails":
            MemoryRouter.failures = op[1]
        elif op[0] == "deadline":
            Rollout.objects.filter(pk=rollout.pk, deadline_at__isnull=False).update(
                deadline_at=timezone.now() - timedelta(seconds=1)
            )
        else:
            action = "promote" if op[0] == "promote" else op[1]
            try:
                result = actions.act(
                    rollout.pk, action, access=access, full=op[0] == "promote" and bool(op[1])
                )
            except actions.RolloutError:
                pass
            else:
                if action == "abort":
                    oracle.saw(RolloutState.ABORTED)
                elif action == "rollback" and result.pk == rollout.pk:
                    oracle.saw(RolloutState.ROLLED_BACK)
                elif action == "retry" and current.is_terminal:
                    oracle.cause = None  # restarted from the first step
        check_invariants(Rollout.objects.get(pk=rollout.pk))
    # then once it runs to its end, it ends where the inputs said
    final = finish(rollout.pk, oracle)
    event(f"ended {final.state}")
    check_invariants(final)
    assert final.state == oracle.expected, (final.message, ops)
    if final.state in ROLLBACK_ENDINGS:
        # after any rollback all traffic is on stable
        assert final.applied_weight == 0
        assert canary_share() == 0
    else:
        assert final.applied_weight == 100
        assert canary_share() == 100
