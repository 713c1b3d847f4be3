"""A group's instances in its traffic router: into rotation once healthy, drained before they
go, their counters read to confirm the drain, and forgotten once stopped.

The router is the service's traffic route in the group's environment (deployments'
TrafficRoute, the same one rollouts split): scaling never keeps a second description of it.
While a rollout of the service is active the rollout owns the weights, and the router's
drift reconciler (deployments) re-applies them with the group's new instances included, so
scaling only says which instances are routable (their lifecycle) and drains its own."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.choices import Lifecycle
from catalog.models import Instance
from deployments.drivers import driver_for
from deployments.drivers.base import Driver, DriverError, Split, Target, TargetStats
from deployments.models import TrafficRoute
from scaling.models import ScalingGroup

# Instances a group's route sends traffic to when no rollout is active.
ROUTABLE = (Lifecycle.REGISTERED, Lifecycle.ACTIVE, Lifecycle.STALE)


def route_of(group: ScalingGroup) -> TrafficRoute | None:
    return (
        TrafficRoute.objects.select_related("router")
        .filter(service_id=group.service_id, environment_id=group.environment_id)
        .first()
    )


def router_of(group: ScalingGroup) -> Driver | None:
    """The group's traffic router, or None when the service has no route (then nothing is
    drained or confirmed: the report says so)."""
    route = route_of(group)
    return driver_for(route) if route is not None else None


def target(instance: Instance) -> Target:
    return Target(instance.host, instance.port, instance.pk)


def in_rotation(group: ScalingGroup, driver: Driver) -> None:
    """Every routable instance of the group's service at an equal share (no rollout active).

    Absolute, like a rollout's step: draining and launching instances get no weight."""
    routable = tuple(
        target(i)
        for i in Instance.objects.filter(
            service_id=group.service_id,
            environment_id=group.environment_id,
            lifecycle__in=ROUTABLE,
        ).order_by("host", "port")
    )
    if not routable:
        raise DriverError(f"{group} has no routable instance to send traffic to")
    driver.apply(Split(0, routable, ()), {})


def drain(driver: Driver, instance: Instance) -> None:
    driver.drain((target(instance),), {})


@dataclass(frozen=True)
class Counters:
    """What the router says about one instance right now."""

    sessions: int
    responses: int
    errors: int
    rate: float | None

    def as_json(self) -> dict[str, float | int | None]:
        return {
            "sessions": self.sessions,
            "responses": self.responses,
            "errors": self.errors,
            "rate": self.rate,
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> Counters | None:
        if not raw or "responses" not in raw:
            return None
        rate = raw.get("rate")
        return cls(
            int(raw.get("sessions") or 0),  # type: ignore[call-overload]
            int(raw.get("responses") or 0),  # type: ignore[call-overload]
            int(raw.get("errors") or 0),  # type: ignore[call-overload]
            float(rate) if isinstance(rate, int | float) else None,
        )


def counters(driver: Driver, instance: Instance) -> Counters | None:
    """The instance's counters in the router, or None when the router does not list it."""
    found: TargetStats | None = driver.stats((target(instance),), {}).get(target(instance).address)
    if found is None:
        return None
    return Counters(found.sessions, found.responses, found.responses_5xx, found.request_rate)


def forget(driver: Driver, instance: Instance) -> None:
    """Take a stopped instance out of the router's configuration where the router allows."""
    driver.forget((target(instance),), {})
