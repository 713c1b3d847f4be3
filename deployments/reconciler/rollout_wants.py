"""What each active rollout wants of its router: its step's split over the instances routable
now, as the router would hold it after the step's `apply`; the drift pass compares it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from deployments.choices import PauseCause, RolloutEvent, RolloutState
from deployments.drivers import driver_for
from deployments.drivers.base import Difference, Driver, DriverError, Pool, Split
from deployments.models import Rollout
from deployments.reconciler.drift import Wanted, wanted_state
from deployments.reconciler.events import announce, rollout_name
from deployments.reconciler.traffic import targets

logger = logging.getLogger(__name__)

# Rolling back: its own step is about to set stable's weights. Pending: nothing applied yet.
HOLDING_STATES = (RolloutState.PROGRESSING, RolloutState.PAUSED)
SHOWN_DIFFERENCES = 4  # in the event's message; the payload has them all


class RolloutWanted(Wanted):
    """A rollout's step as its router should hold it."""

    def __init__(self, rollout: Rollout, driver: Driver, pools: dict[str, Pool], split: Split):
        assert rollout.router is not None
        super().__init__(rollout.router, driver, pools)
        self.rollout = rollout
        self.split = split

    def hold(self) -> bool:
        """Lock the rollout row unless a step holds it; it must still want the same split."""
        locked = (
            Rollout.objects.select_for_update(skip_locked=True)
            .filter(
                pk=self.rollout.pk,
                revision=self.rollout.revision,
                state=self.rollout.state,
                desired_weight=self.rollout.desired_weight,
            )
            .values_list("pk", flat=True)
            .first()
        )
        return locked is not None

    def repaired(self, differences: list[Difference]) -> None:
        """Read the split back, so the rollout page shows what the router has, and say what
        was re-applied."""
        rollout = self.rollout
        applied = self.driver.read(self.split, rollout.router_state or {})
        rollout.applied_weight = applied.canary_percent
        rollout.applied_detail = applied.weights
        Rollout.objects.filter(pk=rollout.pk).update(
            applied_weight=rollout.applied_weight, applied_detail=rollout.applied_detail
        )
        shown = "; ".join(d.describe() for d in differences[:SHOWN_DIFFERENCES])
        more = len(differences) - SHOWN_DIFFERENCES
        router = self.route.router.name
        announce(
            RolloutEvent.TRAFFIC_REAPPLIED,
            rollout,
            message=(
                f"{rollout_name(rollout)}: router {router} had drifted from "
                f"{rollout.desired_weight}% on {rollout.to_version} ({rollout.step_label}); "
                f"re-applied {shown}" + (f" and {more} more" if more > 0 else "")
            ),
            router=router,
            differences=[d.to_json() for d in differences],
        )


@wanted_state("rollouts")
def rollout_wants() -> Iterator[Wanted]:
    """Every active rollout that has set weights, except one whose router is failing (its
    own retries are already putting the step right)."""
    rollouts = (
        Rollout.objects.filter(
            state__in=HOLDING_STATES, applied_weight__isnull=False, router__isnull=False
        )
        .exclude(paused_for=PauseCause.DRIVER_ERROR)
        .select_related("service", "environment", "router", "router__router")
        .order_by("pk")
    )
    for rollout in rollouts:
        assert rollout.router is not None
        stable, canary = targets(rollout)
        split = Split(rollout.desired_weight, stable, canary)
        try:
            driver = driver_for(rollout.router)
            pools = driver.wanted_pools(split, (), rollout.router_state or {})
        except DriverError as exc:
            # No instances left on a side that should get traffic: the step's own run says so.
            logger.info("rollout %s: nothing to reconcile: %s", rollout.pk, exc)
            continue
        if pools:
            yield RolloutWanted(rollout, driver, pools, split)
