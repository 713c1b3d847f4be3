"""What scaling wants of each group's router, for deployments' drift pass: the group's
instances in service at equal weights (when no rollout owns the weights) and the ones
leaving drained. So an HAProxy reload that brings a draining server back into rotation, or
drops a server a scale-out added, is put right within seconds (aws-load-balancer-controller
users lose drains on reloads; Signalbox keeps them in its rows and re-applies them)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db.models import Q
from django.utils import timezone

from catalog.models import Instance
from controlplane.events import publish
from deployments.drivers import driver_for
from deployments.drivers.base import Difference, Driver, DriverError, Pool, Split
from deployments.models import TrafficRoute
from deployments.reconciler.drift import Wanted, wanted_state
from scaling import inputs, routing
from scaling.choices import TERMINATION_OPEN, ScalingEvent
from scaling.models import ScalingGroup, Termination

logger = logging.getLogger(__name__)
SHOWN_DIFFERENCES = 4


class GroupWanted(Wanted):
    """One group's routable and draining instances, as its route should hold them."""

    def __init__(
        self, group: ScalingGroup, route: TrafficRoute, driver: Driver, pools: dict[str, Pool]
    ) -> None:
        super().__init__(route, driver, pools)
        self.group = group

    def hold(self) -> bool:
        """Lock the group unless a converge pass is acting on it (it sets the router itself)."""
        now = timezone.now()
        return (
            ScalingGroup.objects.select_for_update(skip_locked=True)
            .filter(pk=self.group.pk)
            .filter(Q(converge_lease_until__isnull=True) | Q(converge_lease_until__lt=now))
            .exists()
        )

    def repaired(self, differences: list[Difference]) -> None:
        shown = "; ".join(d.describe() for d in differences[:SHOWN_DIFFERENCES])
        more = len(differences) - SHOWN_DIFFERENCES
        publish(
            ScalingEvent.ROUTER_REAPPLIED,
            subject=self.group,
            service=self.group.service,
            environment=self.group.environment,
            message=f"{self.group}: router {self.route.router.name} had drifted from the "
            f"group's instances; re-applied {shown}" + (f" and {more} more" if more > 0 else ""),
            payload={
                "router": self.route.router.name,
                "differences": [d.to_json() for d in differences],
            },
        )


@wanted_state("scaling")
def group_wants() -> Iterator[Wanted]:
    groups = ScalingGroup.objects.select_related("service", "environment").order_by("pk")
    for group in groups:
        route = routing.route_of(group)
        if route is None:
            continue
        leaving = Instance.objects.filter(
            pk__in=Termination.objects.filter(group=group, state__in=TERMINATION_OPEN).values(
                "instance_id"
            )
        )
        drained = tuple(routing.target(i) for i in leaving)
        split = None
        if inputs.active_rollout(group) is None:
            routable = tuple(
                routing.target(i)
                for i in Instance.objects.filter(
                    service_id=group.service_id,
                    environment_id=group.environment_id,
                    lifecycle__in=routing.ROUTABLE,
                ).order_by("host", "port")
            )
            split = Split(0, routable, ()) if routable else None
        if split is None and not drained:
            continue
        try:
            driver = driver_for(route)
            pools = driver.wanted_pools(split, drained, {})
        except DriverError as exc:
            logger.info("%s: nothing to reconcile: %s", group, exc)
            continue
        if pools:
            yield GroupWanted(group, route, driver, pools)
