"""Claiming due rollouts: a claimed rollout is held for the lease the settings give, then freed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from deployments import reconciler
from deployments.tests.conftest import make_route, start

pytestmark = pytest.mark.django_db


def test_a_claim_holds_the_rollout_for_the_configured_lease(world: Any, settings: Any) -> None:
    # given a rollout due now, and a lease set after start-up
    make_route(world, {"socket": "/unused"})
    rollout = start(world, steps=[{"set_weight": 100}])
    settings.SIGNALBOX_ROLLOUT_LEASE_SECONDS = 7
    now = timezone.now()
    # when the beat claims due rollouts
    claimed = reconciler.claim_due(now=now)
    # then it is leased until its due time plus 7 s, and nobody else claims it meanwhile
    assert [rollout_id for rollout_id, _ in claimed] == [rollout.pk]
    rollout.refresh_from_db()
    assert rollout.next_action_at is not None
    assert rollout.lease_until == max(rollout.next_action_at, now) + timedelta(seconds=7)
    assert reconciler.claim_due(now=now + timedelta(seconds=6)) == []
    assert [r for r, _ in reconciler.claim_due(now=now + timedelta(seconds=8))] == [rollout.pk]
