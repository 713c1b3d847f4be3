"""Batches: the beat hands rollouts to workers many at a time (deployments.tasks.advance_batch).

Against a real HAProxy (its backends point at ports nobody listens on: weights are set and
read back all the same). A batch must keep every promise a single run makes: two workers
given the same rollouts do each step once, and one rollout whose router refuses, or whose
run breaks, leaves the others to go on.
"""

from __future__ import annotations

import socket
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from catalog.models import Instance, Service
from controlplane.models import Event
from deployments import reconciler
from deployments.choices import PauseCause, RolloutEvent, RolloutState, StepKind
from deployments.models import Rollout, RolloutStep, TrafficRoute
from deployments.tests.conftest import VersionServer, at_once, free_port, make_route, start

STEPS = [{"set_weight": 40}, {"pause": {"seconds": 60}}, {"set_weight": 100}]


def canary_weight(sock: str, backend: str) -> int:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(sock)
        conn.sendall(f"get weight {backend}/s2\n".encode())
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return int(answer.split()[0])


def rollouts_behind_one_haproxy(
    world: Any, haproxy_factory: Any, count: int
) -> tuple[Any, list[Any]]:
    """`count` services (checkout and more), each two 1.0 servers and one 2.0 (s2) on its
    own backend be_N, each with a rollout to 2.0 due now."""
    backends = {
        f"be_{i}": [VersionServer(v, free_port()) for v in ("1.0", "1.0", "2.0")]
        for i in range(count)
    }
    proxy = haproxy_factory(backends)
    first = make_route(world, proxy.connection, backend="be_0")
    found = []
    for i in range(count):
        service = (
            world.service
            if i == 0
            else Service.objects.create(slug=f"svc-{i}", name=f"S{i}", team=world.team)
        )
        for server in backends[f"be_{i}"]:
            Instance.objects.create(
                service=service,
                environment=world.production,
                host="127.0.0.1",
                port=server.port,
                version=server.version,
            )
        if i:
            TrafficRoute.objects.create(
                router=first.router,
                service=service,
                environment=world.production,
                backend=f"be_{i}",
            )
        world.service = service
        found.append(start(world, steps=STEPS))
    return proxy, found


def step_rows(rollout: Rollout) -> Counter[tuple[int, str]]:
    return Counter(RolloutStep.objects.filter(rollout=rollout).values_list("index", "kind"))


@pytest.mark.django_db(transaction=True)
def test_two_workers_given_the_same_batch_do_each_step_once(
    world: Any, haproxy_factory: Any
) -> None:
    # given four rollouts due now, claimed once, and handed to two workers at the same time
    # (a redelivered message, or a lease that ran out while the first still worked)
    proxy, rollouts = rollouts_behind_one_haproxy(world, haproxy_factory, 4)
    ids = [rollout_id for rollout_id, _ in reconciler.claim_due()]
    assert sorted(ids) == sorted(r.pk for r in rollouts)
    batches = at_once(lambda: reconciler.advance_many(ids))
    outcomes = [step for batch in batches for _, outcome in batch.runs for step in outcome.steps]
    # then each rollout set 40 % once and began its pause once, whichever worker did which
    done = Counter(outcomes)
    assert done["set weight 40"] == 4
    assert done["pausing 60s"] == 4
    for index, rollout in enumerate(rollouts):
        rollout.refresh_from_db()
        assert rollout.state == RolloutState.PROGRESSING
        assert rollout.step_index == 1 and rollout.pause_until is not None
        assert step_rows(rollout) == {(0, StepKind.SET_WEIGHT): 1, (1, StepKind.PAUSE): 1}
        started = Event.objects.filter(
            action=RolloutEvent.STEP_STARTED, payload__rollout=rollout.pk
        ).count()
        assert started == 2
        # HAProxy holds 40 % on the new server (stable servers 3, the new one 4)
        assert canary_weight(proxy.socket, f"be_{index}") == 4


@pytest.mark.django_db
def test_a_router_refusing_one_rollout_does_not_hold_up_the_batch(
    world: Any, haproxy_factory: Any
) -> None:
    # given three rollouts in one batch, the first routed to a backend HAProxy does not have
    proxy, rollouts = rollouts_behind_one_haproxy(world, haproxy_factory, 3)
    TrafficRoute.objects.filter(backend="be_0").update(backend="be_gone")
    ids = [r.pk for r in rollouts]
    # when the batch runs
    batch = reconciler.advance_many(ids)
    # then the refused one is paused with HAProxy's reason and retried in a second...
    broken = Rollout.objects.get(pk=ids[0])
    assert broken.state == RolloutState.PAUSED
    assert broken.paused_for == PauseCause.DRIVER_ERROR
    assert "no backend 'be_gone'" in broken.message
    assert broken.next_action_at is not None
    assert broken.next_action_at - timezone.now() <= timedelta(seconds=1)
    assert Event.objects.filter(action=RolloutEvent.DRIVER_ERROR, payload__rollout=ids[0]).exists()
    # ...and the others set their weights on the same HAProxy all the same
    assert dict(batch.runs)[ids[0]].did == "driver error"
    for index, rollout_id in enumerate(ids[1:], start=1):
        rollout = Rollout.objects.get(pk=rollout_id)
        assert rollout.state == RolloutState.PROGRESSING
        assert rollout.applied_weight == 40
        assert canary_weight(proxy.socket, f"be_{index}") == 4
    assert batch.errors == {}


@pytest.mark.django_db
def test_a_run_that_breaks_is_named_and_left_to_its_lease_while_the_others_go_on(
    world: Any, haproxy_factory: Any, caplog: Any
) -> None:
    # given a batch whose middle rollout holds a step no reconciler knows (a bad row)
    proxy, rollouts = rollouts_behind_one_haproxy(world, haproxy_factory, 3)
    ids = [rollout_id for rollout_id, _ in reconciler.claim_due()]
    Rollout.objects.filter(pk=rollouts[1].pk).update(steps=[{"teleport": 50}])
    # when the batch runs
    batch = reconciler.advance_many([r.pk for r in rollouts])
    # then that run is reported and logged, and the rollout stays leased (the beat claims
    # it again when the lease ends) with nothing half-done
    assert set(batch.errors) == {rollouts[1].pk}
    assert "teleport" in batch.errors[rollouts[1].pk]
    assert f"rollout {rollouts[1].pk}: run failed" in caplog.text
    broken = Rollout.objects.get(pk=rollouts[1].pk)
    assert broken.state == RolloutState.PENDING and broken.lease_until is not None
    assert not RolloutStep.objects.filter(rollout=broken).exists()
    assert reconciler.claim_due() == []
    later = broken.lease_until + timedelta(seconds=1)
    assert broken.pk in [r for r, _ in reconciler.claim_due(now=later)]
    # and the others moved on
    assert sorted(ids) == sorted(r.pk for r in rollouts)
    for index in (0, 2):
        assert Rollout.objects.get(pk=rollouts[index].pk).applied_weight == 40
        assert canary_weight(proxy.socket, f"be_{index}") == 4


def test_claimed_rollouts_are_grouped_by_due_time_and_size() -> None:
    now = timezone.now()
    due = [(i, now + timedelta(milliseconds=30 * i)) for i in range(10)]
    # rollouts due within 100 ms share a batch (ETA: the latest of them), at most 3 a batch
    groups = reconciler.batches(list(reversed(due)), size=3, window=timedelta(milliseconds=100))
    assert [ids for ids, _ in groups] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert [at for _, at in groups] == [due[2][1], due[5][1], due[8][1], due[9][1]]
    spread = [(1, now), (2, now + timedelta(milliseconds=150))]
    assert [ids for ids, _ in reconciler.batches(spread, size=50)] == [[1], [2]]
