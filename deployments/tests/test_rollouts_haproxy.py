"""Rollouts through a real HAProxy: real traffic follows each step, failures roll back."""

from __future__ import annotations

from typing import Any

import pytest

from deployments.choices import PauseCause, RolloutState, StepKind, Verdict
from deployments.models import Measurement, Rollout
from deployments.tests.conftest import Fleet, drive, lb_metric, start, start_haproxy

# Weighted round robin is deterministic; 200 requests land within a few points of the split.
TOLERANCE = 4.0
REQUESTS = 200

pytestmark = pytest.mark.django_db


def share_of(fleet: Fleet, version: str, requests: int = REQUESTS) -> float:
    seen = fleet.proxy.traffic(requests)
    return 100.0 * seen[version] / requests


def keep_traffic_flowing(fleet: Fleet) -> Any:
    def send(rollout: Rollout) -> None:
        if rollout.current_step and StepKind.ANALYSIS in rollout.current_step:
            fleet.proxy.traffic(15)

    return send


def test_a_canary_moves_through_its_steps_and_real_traffic_follows(fleet: Fleet) -> None:
    # given
    steps = [
        {"set_weight": 10},
        {"analysis": {"metrics": [lb_metric()]}},
        {"set_weight": 50},
        {"analysis": {"metrics": [lb_metric()]}},
        {"set_weight": 100},
    ]
    rollout = start(fleet.world, steps=steps)
    observed = {}
    # when the reconciler runs each step, and traffic flows between steps
    for index, weight in ((0, 10), (2, 50)):
        rollout = drive(
            rollout.pk, lambda r, i=index: r.step_index > i, between=keep_traffic_flowing(fleet)
        )
        observed[weight] = share_of(fleet, "2.0")
    rollout = drive(rollout.pk, lambda r: r.is_terminal, between=keep_traffic_flowing(fleet))
    # then every step's split is what real requests saw, and the rollout succeeded
    assert observed[10] == pytest.approx(10, abs=TOLERANCE)
    assert observed[50] == pytest.approx(50, abs=TOLERANCE)
    assert rollout.state == RolloutState.SUCCEEDED
    assert rollout.applied_weight == 100
    assert share_of(fleet, "2.0", 50) == 100
    assert {m.verdict for m in Measurement.objects.filter(rollout=rollout)} == {Verdict.PASS}


def test_a_failing_canary_is_rolled_back_by_itself(fleet: Fleet) -> None:
    # given a new version that answers 500
    fleet.canary[0].failing = True
    steps = [{"set_weight": 25}, {"analysis": {"metrics": [lb_metric()]}}, {"set_weight": 100}]
    rollout = start(fleet.world, steps=steps)
    # when
    rollout = drive(rollout.pk, lambda r: r.is_terminal, between=keep_traffic_flowing(fleet))
    # then it rolled back, says why, and all real traffic is on 1.0 again
    assert rollout.state == RolloutState.ROLLED_BACK
    assert "analysis failed" in rollout.message and "5xx rate 100.00%" in rollout.message
    assert rollout.applied_weight == 0
    assert fleet.proxy.traffic(40) == {"1.0": 40}
    failed = Measurement.objects.get(rollout=rollout, verdict=Verdict.FAIL)
    assert failed.value == 100 and failed.threshold == "5xx <= 5%"


def test_no_traffic_is_inconclusive_and_pauses_instead_of_passing(fleet: Fleet) -> None:
    # given no traffic reaches the canary
    steps = [{"set_weight": 10}, {"analysis": {"metrics": [lb_metric()]}}, {"set_weight": 100}]
    rollout = start(fleet.world, steps=steps)
    # when
    rollout = drive(rollout.pk, lambda r: r.state == RolloutState.PAUSED)
    # then it waits for a person (or the deadline), and says it has no data
    assert rollout.paused_for == PauseCause.INCONCLUSIVE
    assert "only 0 responses from the new version" in rollout.message
    assert rollout.desired_weight == 10
    assert rollout.next_action_at == rollout.deadline_at


def test_the_progress_deadline_rolls_back_and_says_why(fleet: Fleet) -> None:
    # given a rollout that cannot get data, with a 1 s deadline
    steps = [{"set_weight": 10}, {"analysis": {"metrics": [lb_metric()]}}, {"set_weight": 100}]
    rollout = start(fleet.world, steps=steps)
    Rollout.objects.filter(pk=rollout.pk).update(progress_deadline_seconds=1)
    # when time runs out
    rollout = drive(rollout.pk, lambda r: r.is_terminal)
    # then
    assert rollout.state == RolloutState.FAILED
    assert rollout.message.startswith("progress deadline (0.0166667 min) passed at step 2/3")
    assert "only 0 responses" in rollout.message
    assert fleet.proxy.traffic(20) == {"1.0": 20}


def test_a_router_failure_pauses_with_the_error_and_retries(fleet: Fleet, tmp_path: Any) -> None:
    # given HAProxy goes away after the rollout started
    rollout = start(fleet.world, steps=[{"set_weight": 30}, {"set_weight": 100}])
    fleet.proxy.process.terminate()
    fleet.proxy.process.wait(5)
    # when the reconciler tries the first step
    rollout = drive(rollout.pk, lambda r: r.paused_for == PauseCause.DRIVER_ERROR)
    # then the rollout shows the router's error, keeps its deadline, and will retry
    assert rollout.state == RolloutState.PAUSED
    assert "traffic router failed" in rollout.message and "cannot reach" in rollout.message
    assert rollout.next_action_at is not None
    # and when HAProxy is back, the retry finishes the job
    fleet.proxy = start_haproxy(
        fleet.proxy.config.parent, {"be_checkout": fleet.stable + fleet.canary}
    )
    try:
        rollout = drive(rollout.pk, lambda r: r.is_terminal)
    finally:
        fleet.proxy.process.terminate()
    assert rollout.state == RolloutState.SUCCEEDED
    assert rollout.driver_failures == 0


def test_blue_green_previews_cuts_over_then_drains_the_old_side(fleet: Fleet) -> None:
    # given
    steps = [
        {"preview": {}},
        {"analysis": {"metrics": [lb_metric(min_requests=0)]}},
        {"set_weight": 100},
        {"pause": {"seconds": 1}},
        {"drain_stable": {}},
    ]
    rollout = start(fleet.world, steps=steps, strategy="blue_green")
    # when the preview is up, nobody is sent to it yet
    rollout = drive(rollout.pk, lambda r: r.step_index >= 1)
    assert share_of(fleet, "2.0", 20) == 0
    # when it cuts over, everybody is; the old side stays ready for the rollback window
    rollout = drive(rollout.pk, lambda r: r.step_index >= 3)
    assert share_of(fleet, "2.0", 20) == 100
    assert rollout.pause_until is None or rollout.state == RolloutState.PROGRESSING
    # then after the window the old side is drained and the rollout succeeded
    rollout = drive(rollout.pk, lambda r: r.is_terminal)
    assert rollout.state == RolloutState.SUCCEEDED
    from deployments.drivers import driver_for
    from deployments.drivers.haproxy import HAProxyDriver

    router = driver_for(fleet.route)
    assert isinstance(router, HAProxyDriver)
    servers = router.servers()
    drained = {s.address: not s.takes_traffic for s in servers}
    assert all(drained[s.address] for s in fleet.stable)
    assert not drained[fleet.canary[0].address]


def test_each_step_and_measurement_is_an_event(fleet: Fleet) -> None:
    from controlplane.models import Event

    steps = [{"set_weight": 10}, {"analysis": {"metrics": [lb_metric()]}}, {"set_weight": 100}]
    rollout = start(fleet.world, steps=steps)
    drive(rollout.pk, lambda r: r.is_terminal, between=keep_traffic_flowing(fleet))
    actions = list(
        Event.objects.filter(subject_type="deployments.rollout", subject_id=str(rollout.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions[0] == "rollout.created"
    assert actions[-1] == "rollout.succeeded"
    assert "rollout.analysis" in actions
    assert actions.count("rollout.step_started") >= 3
    analysis = Event.objects.filter(action="rollout.analysis", subject_id=str(rollout.pk)).first()
    assert analysis is not None
    assert analysis.payload["measurements"][0]["verdict"] == Verdict.PASS
