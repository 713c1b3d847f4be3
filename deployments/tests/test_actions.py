"""Actions on rollouts through the API, with a real HAProxy carrying the traffic."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.models import Event
from deployments.choices import PauseCause, RolloutState
from deployments.models import Rollout
from deployments.tests.conftest import Fleet, drive, lb_metric

pytestmark = pytest.mark.django_db


def start_via_api(client: Any, steps: list[dict[str, Any]], version: str = "2.0") -> int:
    response = client.post(
        "/api/v1/rollouts",
        {"service": "checkout", "environment": "production", "version": version, "steps": steps},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return int(response.json()["id"])


def act(client: Any, rollout_id: int, action: str, **data: Any) -> Any:
    return client.post(f"/api/v1/rollouts/{rollout_id}/{action}", data, format="json")


def test_a_paused_rollout_waits_until_resumed(fleet: Fleet, api_as: Any) -> None:
    client = api_as("deployer")
    rollout_id = start_via_api(client, [{"set_weight": 20}, {"set_weight": 100}])
    # when paused before it started
    response = act(client, rollout_id, "pause", reason="waiting for the DBA")
    # then nothing advances and the reason is shown
    assert response.status_code == 200
    assert response.json()["state"] == RolloutState.PAUSED
    assert response.json()["message"] == "paused by deployer: waiting for the DBA"
    rollout = Rollout.objects.get(pk=rollout_id)
    assert rollout.next_action_at is None and rollout.deadline_at is None
    # and pausing again is refused
    again = act(client, rollout_id, "pause")
    assert again.status_code == 409
    assert "already paused" in again.json()["error"]["message"]
    # when resumed it finishes
    assert act(client, rollout_id, "resume").json()["state"] == RolloutState.PENDING
    assert drive(rollout_id, lambda r: r.is_terminal).state == RolloutState.SUCCEEDED
    paused = Event.objects.get(action="rollout.paused")
    assert paused.actor_user == fleet.world.deployer


def test_promote_moves_past_a_wait_and_full_promotion_skips_the_rest(
    fleet: Fleet, api_as: Any
) -> None:
    client = api_as("deployer")
    rollout_id = start_via_api(
        client,
        [
            {"set_weight": 10},
            {"pause": {}},
            {"set_weight": 50},
            {"pause": {}},
            {"set_weight": 75},
            {"set_weight": 100},
        ],
    )
    rollout = drive(rollout_id, lambda r: r.state == RolloutState.PAUSED)
    assert rollout.paused_for == PauseCause.PROMOTION
    assert rollout.message == "waiting to be promoted (2/6 pause until promoted)"
    # when promoted one step, it sets 50% and waits again
    act(client, rollout_id, "promote")
    rollout = drive(rollout_id, lambda r: r.state == RolloutState.PAUSED)
    assert rollout.applied_weight == 50
    assert rollout.step_index == 3
    # when promoted fully, it jumps to 100%
    assert act(client, rollout_id, "promote", full=True).status_code == 200
    rollout = drive(rollout_id, lambda r: r.is_terminal)
    assert rollout.state == RolloutState.SUCCEEDED
    assert fleet.proxy.traffic(20) == {"2.0": 20}
    assert not rollout.step_runs.filter(kind="set_weight", desired_weight=75).exists()


def test_abort_puts_all_traffic_back_on_stable_and_records_who(fleet: Fleet, api_as: Any) -> None:
    client = api_as("deployer")
    rollout_id = start_via_api(client, [{"set_weight": 50}, {"pause": {}}, {"set_weight": 100}])
    drive(rollout_id, lambda r: r.state == RolloutState.PAUSED)
    assert fleet.proxy.traffic(20)["2.0"] == 10
    # when
    response = act(client, rollout_id, "abort", reason="customer reports")
    # then the weights are back on stable before the request returns
    assert response.json()["state"] == RolloutState.ABORTED
    assert fleet.proxy.traffic(20) == {"1.0": 20}
    rollout = Rollout.objects.get(pk=rollout_id)
    assert rollout.message == "aborted by deployer: customer reports"
    assert rollout.applied_weight == 0
    assert fleet.proxy.traffic(20) == {"1.0": 20}
    started, completed = Event.objects.filter(action="rollout.aborted").order_by("id")
    assert started.payload["phase"] == "started" and started.actor_user == fleet.world.deployer
    assert completed.payload["phase"] == "completed"
    # and an aborted rollout cannot be aborted again, but can be retried from the start
    assert act(client, rollout_id, "abort").status_code == 409
    retried = act(client, rollout_id, "retry")
    assert retried.json()["state"] == RolloutState.PENDING
    assert retried.json()["step_index"] == 0


def test_retry_measures_again_after_no_data(fleet: Fleet, api_as: Any) -> None:
    client = api_as("deployer")
    rollout_id = start_via_api(
        client, [{"set_weight": 50}, {"analysis": {"metrics": [lb_metric()]}}, {"set_weight": 100}]
    )
    rollout = drive(rollout_id, lambda r: r.state == RolloutState.PAUSED)
    assert rollout.paused_for == PauseCause.INCONCLUSIVE
    # when traffic flows and someone retries
    fleet.proxy.traffic(20)
    assert act(client, rollout_id, "retry").status_code == 200
    rollout = drive(rollout_id, lambda r: r.is_terminal, between=lambda r: fleet.proxy.traffic(10))
    # then the new analysis passed on real data
    assert rollout.state == RolloutState.SUCCEEDED


def test_rollback_after_success_starts_a_rollout_back_to_the_previous_version(
    fleet: Fleet, api_as: Any
) -> None:
    client = api_as("deployer")
    rollout_id = start_via_api(client, [{"set_weight": 100}])
    drive(rollout_id, lambda r: r.is_terminal)
    assert fleet.proxy.traffic(10) == {"2.0": 10}
    # when
    response = act(client, rollout_id, "rollback", reason="memory leak")
    # then a new rollout 2.0 → 1.0 runs and puts everything back on 1.0
    assert response.status_code == 201
    back = response.json()
    assert (back["from_version"], back["to_version"], back["rollback_of"]) == (
        "2.0",
        "1.0",
        rollout_id,
    )
    assert drive(back["id"], lambda r: r.is_terminal).state == RolloutState.SUCCEEDED
    assert fleet.proxy.traffic(10) == {"1.0": 10}
    # and the first one can no longer be rolled back: it is not current
    again = act(client, rollout_id, "rollback")
    assert again.status_code == 409
    assert "no longer current" in again.json()["error"]["message"]


def test_a_rollback_the_router_refuses_keeps_trying_and_refuses_other_actions(
    fleet: Fleet, api_as: Any
) -> None:
    # given a rollout at 50% whose router then goes away
    client = api_as("deployer")
    rollout_id = start_via_api(client, [{"set_weight": 50}, {"pause": {}}])
    drive(rollout_id, lambda r: r.state == RolloutState.PAUSED)
    fleet.proxy.process.terminate()
    fleet.proxy.process.wait(5)
    # when someone rolls back
    response = act(client, rollout_id, "rollback")
    # then it keeps rolling back, with the error shown and a retry scheduled
    assert response.json()["state"] == RolloutState.ROLLING_BACK
    rollout = Rollout.objects.get(pk=rollout_id)
    assert rollout.next_action_at is not None
    assert rollout.step_runs.get(kind="rollback").message.startswith("traffic router failed")
    for action in ("pause", "promote", "abort", "rollback"):
        response = act(client, rollout_id, action)
        assert response.status_code == 409, action
        assert "rolling back" in response.json()["error"]["message"]


def test_only_promote_takes_full(fleet: Fleet, api_as: Any) -> None:
    client = api_as("deployer")
    rollout_id = start_via_api(client, [{"set_weight": 100}])
    response = act(client, rollout_id, "pause", full=True)
    assert response.status_code == 400
    assert "full" in response.json()["error"]["fields"]


def test_people_outside_the_team_cannot_act(fleet: Fleet, api_as: Any) -> None:
    rollout_id = start_via_api(api_as("deployer"), [{"set_weight": 100}])
    assert act(api_as("viewer"), rollout_id, "abort").status_code == 403
    assert act(api_as("outsider"), rollout_id, "abort").status_code == 403
    assert act(api_as("owner"), rollout_id, "abort").status_code == 200
