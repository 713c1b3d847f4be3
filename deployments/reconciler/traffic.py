"""Traffic: which instances are stable and canary, setting absolute weights, router failures."""

from __future__ import annotations

from datetime import datetime, timedelta

from catalog.choices import Lifecycle
from catalog.models import Instance
from deployments.choices import PauseCause, RolloutEvent, RolloutState
from deployments.drivers import driver_for
from deployments.drivers.base import Driver, DriverError, Split, Target
from deployments.models import Rollout
from deployments.reconciler.events import announce, rollout_name

MAX_DRIVER_BACKOFF = 30  # seconds between retries of a failing router
ROUTABLE = (Lifecycle.REGISTERED, Lifecycle.ACTIVE, Lifecycle.STALE)


def targets(rollout: Rollout) -> tuple[tuple[Target, ...], tuple[Target, ...]]:
    """(stable, canary): the routable instances of the old and the new version."""
    instances = Instance.objects.filter(
        service_id=rollout.service_id, environment_id=rollout.environment_id, lifecycle__in=ROUTABLE
    ).order_by("host", "port")
    stable: list[Target] = []
    canary: list[Target] = []
    for instance in instances:
        target = Target(instance.host, instance.port, instance.pk)
        if instance.version == rollout.to_version:
            canary.append(target)
        elif not rollout.from_version or instance.version == rollout.from_version:
            stable.append(target)
    return tuple(stable), tuple(canary)


def driver_of(rollout: Rollout) -> Driver:
    """The traffic router of the rollout's route; DriverError when it has none."""
    if rollout.router is None:
        raise DriverError("this rollout has no traffic route; add one for the service")
    return driver_for(rollout.router)


def maybe_driver(rollout: Rollout) -> Driver | None:
    """The router if there is one: providers that read its stats do without otherwise."""
    try:
        return driver_of(rollout)
    except DriverError:
        return None


def apply_weight(rollout: Rollout, percent: int, now: datetime) -> None:
    """Send `percent` of traffic to the canary (absolute, so repeating it changes nothing)."""
    stable, canary = targets(rollout)
    if percent > 0 and not canary:
        raise DriverError(
            f"no routable instance of {rollout.service.slug} {rollout.to_version} in "
            f"{rollout.environment.slug}; register the new version's instances"
        )
    if percent < 100 and not stable:
        raise DriverError(
            f"no routable instance of {rollout.service.slug} "
            f"{rollout.from_version or '(stable)'} in {rollout.environment.slug} to send traffic to"
        )
    split = Split(percent, stable, canary)
    driver = driver_of(rollout)
    rollout.router_state = driver.prepare(split, rollout.router_state or {})
    applied = driver.apply(split, rollout.router_state)
    rollout.desired_weight = percent
    rollout.applied_weight = applied.canary_percent
    rollout.applied_detail = applied.weights
    rollout.revision += 1


def driver_failed(rollout: Rollout, now: datetime, error: str) -> None:
    """Pause the rollout and retry the step with backoff, never past its deadline."""
    rollout.driver_failures += 1
    backoff = backoff_after(rollout.driver_failures)
    retry_at = now + backoff
    if rollout.deadline_at is not None:
        retry_at = min(retry_at, rollout.deadline_at)
    rollout.state = RolloutState.PAUSED
    rollout.paused_for = PauseCause.DRIVER_ERROR
    rollout.message = f"traffic router failed: {error}; retrying in {backoff.total_seconds():g}s"[
        :1000
    ]
    rollout.next_action_at = retry_at
    rollout.revision += 1
    announce(
        RolloutEvent.DRIVER_ERROR,
        rollout,
        message=f"{rollout_name(rollout)}: {rollout.message}",
        error=error,
        failures=rollout.driver_failures,
    )


def driver_recovered(rollout: Rollout, now: datetime) -> None:
    """After a router call succeeds: clear the failure count, and say so if there was one."""
    if rollout.driver_failures:
        rollout.driver_failures = 0
        rollout.paused_for = PauseCause.NONE
        rollout.message = "the traffic router answers again"
        announce(
            RolloutEvent.RESUMED, rollout, message=f"{rollout_name(rollout)}: {rollout.message}"
        )


def backoff_after(failures: int) -> timedelta:
    """1, 2, 4, ... seconds between retries of a failing router, at most MAX_DRIVER_BACKOFF."""
    return timedelta(seconds=min(2 ** max(failures - 1, 0), MAX_DRIVER_BACKOFF))
