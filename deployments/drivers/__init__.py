"""Traffic routers: one small interface (read, set, drain, ready, stats) per load balancer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployments.choices import RouterKind
from deployments.drivers.aws_alb import ALBDriver
from deployments.drivers.base import Driver, DriverError
from deployments.drivers.haproxy import HAProxyDriver

if TYPE_CHECKING:
    from deployments.models import TrafficRoute

DRIVERS: dict[str, type[Driver]] = {
    RouterKind.HAPROXY: HAProxyDriver,
    RouterKind.AWS_ALB: ALBDriver,
}


def driver_for(route: TrafficRoute) -> Driver:
    """The driver for a service's route, configured from its router."""
    router = route.router
    driver_class = DRIVERS.get(router.kind)
    if driver_class is None:
        raise DriverError(f"no driver for router kind {router.kind!r}")
    return driver_class(
        name=f"{router.kind}:{router.pk}:{router.name}",
        connection=router.connection or {},
        credentials=router.credentials or "",
        route={
            "backend": route.backend,
            "preview_backend": route.preview_backend,
            "add_missing_servers": route.add_missing_servers,
            "listener_arn": route.listener_arn,
            "rule_arn": route.rule_arn,
            "target_group_arns": route.target_group_arns,
        },
        timeout=router.timeout_seconds,
        retries=router.retries,
    )
