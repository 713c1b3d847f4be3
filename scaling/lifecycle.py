"""Acting on a group's count: launch, wait until healthy, give traffic; choose, drain, confirm,
hand over, stop. Level-triggered like the autoscaler: each pass compares what runs with
what the group wants and moves every open launch and termination one step on; nothing in
here waits or sleeps, so one worker keeps many groups moving.

Scale up: the driver starts instances; each is registered `launching` (probed, never
routed) and given traffic only once its checks pass; one that misses its deadline is
stopped and reported with its last probe output.

Scale down: victims are chosen deliberately (victims.py) and then, each in its own
termination row: drained in the router; the drain *confirmed* from the router's counters
(no session open and no response counted between two reads), bounded by the drain
timeout; the instance told it is draining (it polls its lifecycle, or the driver delivers
a notice) and given until the lifecycle timeout, which its heartbeats extend, to say it is
ready; only then stopped (SIGTERM, SIGKILL after the grace). The drain report says what
the router saw and how it ended.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from catalog.choices import Lifecycle
from catalog.models import Instance
from controlplane.events import publish
from controlplane.models import Event
from deployments.drivers.base import Driver, DriverError
from health import services as health_services
from health.choices import CheckStatus
from health.models import InstanceCheck
from scaling import inputs, routing, victims
from scaling.choices import (
    LAUNCH_OPEN,
    TERMINATION_OPEN,
    Ending,
    LaunchState,
    Reason,
    ScalingEvent,
    TerminationState,
)
from scaling.drivers import driver_of
from scaling.drivers.base import InstanceDriver, Running, ScalingDriverError
from scaling.models import InstanceMetric, Launch, ScalingGroup, Termination

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
BUSY_EVERY = timedelta(seconds=1)  # a group with open work is looked at again this soon
IDLE_EVERY = timedelta(seconds=5)  # and one at rest this often (an instance may have died)
CLAIM_BATCH = 200
# A launch that failed this many times in an hour says so in its event (alert rules read it).
FAILED_LAUNCHES_WORTH_AN_ALERT = 3
# How much a heartbeat may extend a lifecycle wait in all: AWS's 100 x the heartbeat timeout,
# at most 48 hours.
MAX_HEARTBEATS = 100
MAX_LIFECYCLE = timedelta(hours=48)
TOKEN_PREFIX = "sbxl"  # noqa: S105 (a public marker of lifecycle tokens)
# What counts as healthy for taking traffic (warn passes, as it does for readiness).
HEALTHY = (CheckStatus.PASS, CheckStatus.WARN)
# A failing driver says so on the timeline at most this often per group.
DRIVER_ERROR_EVERY = timedelta(seconds=60)


def claim_due(now: datetime | None = None, limit: int = CLAIM_BATCH) -> list[int]:
    """Lease the groups due for a converge pass; one caller per group (SKIP LOCKED)."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            ScalingGroup.objects.select_for_update(skip_locked=True)
            .filter(converge_due_at__lte=now)
            .filter(Q(converge_lease_until__isnull=True) | Q(converge_lease_until__lt=now))
            .order_by("converge_due_at")
            .values_list("pk", flat=True)[:limit]
        )
        ScalingGroup.objects.filter(pk__in=ids).update(converge_lease_until=now + LEASE)
    return ids


@dataclass
class Pass:
    """What one converge pass did, for logs, tests and the benchmark."""

    group_id: int
    launched: list[int] = field(default_factory=list)
    in_service: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    chosen: list[int] = field(default_factory=list)
    terminated: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return bool(self.launched or self.chosen or self.in_service)


def converge(group_id: int, now: datetime | None = None) -> Pass:
    """One pass over one claimed group; releases the claim and says when to come back."""
    now = now or timezone.now()
    done = Pass(group_id)
    group = (
        ScalingGroup.objects.select_related("service", "environment").filter(pk=group_id).first()
    )
    if group is None:
        return done
    try:
        _converge(group, now, done)
    finally:
        open_work = (
            Launch.objects.filter(group=group, state__in=LAUNCH_OPEN).exists()
            or Termination.objects.filter(group=group, state__in=TERMINATION_OPEN).exists()
        )
        again = BUSY_EVERY if open_work or done.busy else IDLE_EVERY
        ScalingGroup.objects.filter(pk=group_id).update(
            converge_due_at=timezone.now() + again, converge_lease_until=None
        )
    return done


def wake(group: ScalingGroup) -> None:
    """Look at the group at the next beat (its count or an instance's answer changed)."""
    ScalingGroup.objects.filter(pk=group.pk).update(converge_due_at=timezone.now())


def _converge(group: ScalingGroup, now: datetime, done: Pass) -> None:
    try:
        driver = driver_of(group)
    except LookupError as exc:
        done.errors.append(str(exc))
        return
    router = _router(group, done)
    for launch in Launch.objects.filter(group=group, state__in=LAUNCH_OPEN).select_related(
        "instance"
    ):
        _step_launch(group, driver, router, launch, now, done)
    for termination in Termination.objects.filter(
        group=group, state__in=TERMINATION_OPEN
    ).select_related("instance"):
        _step_termination(group, driver, router, termination, now, done)
    _schedule_restart(group, now)
    _match_count(group, driver, router, now, done)


def _router(group: ScalingGroup, done: Pass) -> Driver | None:
    try:
        return routing.router_of(group)
    except DriverError as exc:
        done.errors.append(f"traffic router: {exc}")
        return None


# -- the count ----------------------------------------------------------------------------------


def _live(group: ScalingGroup) -> list[Instance]:
    """The group's instances that count: launching, routable, not leaving."""
    return list(inputs.members(group))


def _old(group: ScalingGroup, live: list[Instance]) -> list[Instance]:
    """During a rolling restart: the instances registered before it started."""
    started = group.restart_started_at
    if started is None:
        return []
    return [i for i in live if i.registered_at < started and i.lifecycle != Lifecycle.LAUNCHING]


def _match_count(
    group: ScalingGroup, driver: InstanceDriver, router: Driver | None, now: datetime, done: Pass
) -> None:
    live = _live(group)
    launching = [i for i in live if i.lifecycle == Lifecycle.LAUNCHING]
    old = _old(group, live)
    # A rolling restart surges by one: a new instance first, then an old one goes.
    wanted = min(group.desired + (1 if old else 0), group.max_instances + (1 if old else 0))
    if group.restart_started_at is not None and not old and not launching:
        _finish_restart(group, now)
    if len(live) < wanted:
        reason = Reason.ROLLING_RESTART if old else _reason_for(group)
        _launch(group, driver, wanted - len(live), reason, now, done)
        return
    if launching or Termination.objects.filter(group=group, state__in=TERMINATION_OPEN).exists():
        return  # one change at a time: the next pass looks again
    surplus = len(live) - wanted
    if old and surplus <= 0 and len(live) > group.desired:
        _terminate(group, driver, router, [old[0]], Reason.ROLLING_RESTART, now, done,
                   why="replaced by the rolling restart (oldest first)")  # fmt: skip
        return
    if surplus > 0:
        rollout = inputs.active_rollout(group)
        if rollout is not None and group.freeze_scale_in_during_rollout:
            return  # scale-in waits for the rollout (its instances are judged on this pool)
        _choose_and_terminate(group, driver, router, live, surplus, now, done)


def _reason_for(group: ScalingGroup) -> str:
    last = group.decisions.order_by("-at").values_list("reason", flat=True).first()
    return str(last or Reason.AUTOSCALE)


def _launch(
    group: ScalingGroup,
    driver: InstanceDriver,
    count: int,
    reason: str,
    now: datetime,
    done: Pass,
) -> None:
    try:
        started = driver.launch(count)
    except ScalingDriverError as exc:
        _driver_error(group, f"launch of {count} instance(s) failed: {exc}", done)
        return
    deadline = now + timedelta(seconds=group.launch_deadline_seconds)
    for running in started:
        launch = _record_launch(group, running, reason, deadline)
        done.launched.append(launch.pk)
    if started:
        publish(
            ScalingEvent.SCALED_UP,
            subject=group,
            service=group.service,
            environment=group.environment,
            message=f"{group}: launched {len(started)} instance(s) "
            f"({', '.join(f'{r.host}:{r.port}' for r in started)}); traffic once healthy",
            payload={"refs": [r.ref for r in started], "reason": reason},
        )


def _record_launch(
    group: ScalingGroup, running: Running, reason: str, deadline: datetime
) -> Launch:
    with transaction.atomic():
        instance, created = Instance.objects.select_for_update().get_or_create(
            service=group.service,
            environment=group.environment,
            host=running.host,
            port=running.port,
            defaults={
                "version": running.version,
                "zone": running.zone,
                "lifecycle": Lifecycle.LAUNCHING,
                "labels": {"scaling_group": str(group.pk), "driver_ref": running.ref},
            },
        )
        if not created:
            # A port used before: the new process starts its life afresh.
            instance.version = running.version or instance.version
            instance.zone = running.zone or instance.zone
            instance.lifecycle = Lifecycle.LAUNCHING
            instance.registered_at = timezone.now()
            instance.labels = {
                **(instance.labels or {}),
                "scaling_group": str(group.pk),
                "driver_ref": running.ref,
            }
            instance.save()
        Launch.objects.filter(instance=instance).update(instance=None)
        launch = Launch.objects.create(
            group=group,
            instance=instance,
            driver_ref=running.ref,
            reason=reason,
            state=LaunchState.WAITING_HEALTHY,
            deadline_at=deadline,
        )
        health_services.ensure_checks(instance)
        # Probed at once, not at a jittered point of the first period: it is waited for.
        InstanceCheck.objects.filter(instance=instance).update(next_due_at=timezone.now())
    return launch


def _step_launch(
    group: ScalingGroup,
    driver: InstanceDriver,
    router: Driver | None,
    launch: Launch,
    now: datetime,
    done: Pass,
) -> None:
    instance = launch.instance
    if instance is None or instance.lifecycle == Lifecycle.DEREGISTERED:
        _launch_failed(group, driver, launch, "the instance went away before it turned healthy",
                       now, done)  # fmt: skip
        return
    check = InstanceCheck.objects.filter(instance=instance).first()
    healthy = check is not None and check.status in HEALTHY
    if healthy:
        # Traffic as soon as its checks pass (the readiness delay is about its metrics:
        # inputs.py counts a young instance as not ready for scale-up, as HPA does).
        if launch.healthy_at is None:
            launch.healthy_at = now
        _into_service(group, driver, router, launch, now, done)
        return
    if now >= launch.deadline_at:
        output = _probe_output(check)
        launch.last_probe_output = output
        _launch_failed(
            group,
            driver,
            launch,
            f"never passed its health checks within {group.launch_deadline_seconds}s"
            + (f" (last: {output.get('reason')})" if output.get("reason") else ""),
            now,
            done,
        )


def _probe_output(check: InstanceCheck | None) -> dict[str, object]:
    if check is None:
        return {"reason": "never probed"}
    return {
        "status": check.status,
        "result": check.last_result,
        "reason": check.last_reason,
        "checked_at": check.last_checked_at.isoformat() if check.last_checked_at else None,
        "output": check.last_output,
    }


def _into_service(
    group: ScalingGroup,
    driver: InstanceDriver,
    router: Driver | None,
    launch: Launch,
    now: datetime,
    done: Pass,
) -> None:
    instance = launch.instance
    assert instance is not None
    message = ""
    if router is None and driver.routes_traffic:
        try:
            driver.route_in(launch.driver_ref)
        except ScalingDriverError as exc:
            done.errors.append(str(exc))
            launch.message = f"healthy; the platform refused to route to it: {exc}"[:500]
            launch.save(update_fields=["message", "last_probe_output", "healthy_at"])
            return
    Instance.objects.filter(pk=instance.pk).update(lifecycle=Lifecycle.ACTIVE)
    if router is not None and inputs.active_rollout(group) is None:
        try:
            routing.in_rotation(group, router)
        except DriverError as exc:
            # Healthy but not routed yet: back to the instance, the next pass tries again.
            Instance.objects.filter(pk=instance.pk).update(lifecycle=Lifecycle.LAUNCHING)
            done.errors.append(f"traffic router: {exc}")
            launch.message = f"healthy; the router refused it: {exc}"[:500]
            launch.save(update_fields=["message", "last_probe_output"])
            return
    elif router is not None:
        message = "; the active rollout's router reconciler gives it its stable-side weight"
    launch.state = LaunchState.IN_SERVICE
    launch.in_service_at = now
    launch.message = ("taking traffic" + message)[:500]
    launch.save(update_fields=["state", "in_service_at", "message", "healthy_at"])
    done.in_service.append(launch.pk)
    seconds = (now - launch.started_at).total_seconds()
    publish(
        ScalingEvent.INSTANCE_IN_SERVICE,
        subject=group,
        service=group.service,
        environment=group.environment,
        message=f"{group}: {instance.address} healthy and taking traffic {seconds:.1f}s after "
        "launch" + message,
        payload={"instance": instance.pk, "seconds_to_traffic": round(seconds, 2)},
    )


def _launch_failed(
    group: ScalingGroup,
    driver: InstanceDriver,
    launch: Launch,
    why: str,
    now: datetime,
    done: Pass,
) -> None:
    try:
        driver.terminate(launch.driver_ref, 0)
    except ScalingDriverError as exc:
        why += f"; stopping it failed: {exc}"
    if launch.instance is not None:
        launch.instance.deregister()
    launch.state = LaunchState.FAILED
    launch.message = why[:500]
    launch.save(update_fields=["state", "message", "last_probe_output"])
    done.failed.append(launch.pk)
    recent = Launch.objects.filter(
        group=group, state=LaunchState.FAILED, started_at__gte=now - timedelta(hours=1)
    ).count()
    repeated = recent >= FAILED_LAUNCHES_WORTH_AN_ALERT
    publish(
        ScalingEvent.LAUNCH_FAILED,
        subject=group,
        service=group.service,
        environment=group.environment,
        message=f"{group}: launch {launch.driver_ref} removed: {why}"
        + (f" ({recent} failed launches in the last hour)" if repeated else ""),
        payload={
            "launch": launch.pk,
            "last_probe_output": launch.last_probe_output,
            "failed_last_hour": recent,
            "repeated": repeated,
        },
    )


# -- scale in -----------------------------------------------------------------------------------


def _readings(instances: list[Instance]) -> dict[int, dict[str, float]]:
    readings: dict[int, dict[str, float]] = {}
    for instance_id, name, value in InstanceMetric.objects.filter(
        instance__in=instances
    ).values_list("instance_id", "name", "value"):
        readings.setdefault(instance_id, {})[name] = value
    return readings


def _choose_and_terminate(
    group: ScalingGroup,
    driver: InstanceDriver,
    router: Driver | None,
    live: list[Instance],
    surplus: int,
    now: datetime,
    done: Pass,
) -> None:
    candidates = [i for i in live if i.lifecycle != Lifecycle.LAUNCHING]
    room = max(0, len(live) - group.min_instances)
    choice = victims.choose(candidates, min(surplus, room), _readings(candidates), now)
    if not choice.chosen:
        if choice.spared:
            logger.info("%s: scale-in waits: %s", group,
                        "; ".join(f"{i.address} {why}" for i, why in choice.spared))  # fmt: skip
        return
    for instance, why in choice.chosen:
        _terminate(group, driver, router, [instance], _reason_for(group), now, done, why=why)
    publish(
        ScalingEvent.SCALED_DOWN,
        subject=group,
        service=group.service,
        environment=group.environment,
        message=f"{group}: draining {len(choice.chosen)} instance(s): "
        + "; ".join(f"{i.address} ({why})" for i, why in choice.chosen)
        + (
            "; spared " + "; ".join(f"{i.address} ({why})" for i, why in choice.spared)
            if choice.spared
            else ""
        ),
        payload={
            "chosen": [{"instance": i.pk, "because": why} for i, why in choice.chosen],
            "spared": [{"instance": i.pk, "because": why} for i, why in choice.spared],
        },
    )


def _terminate(
    group: ScalingGroup,
    driver: InstanceDriver,
    router: Driver | None,
    chosen: list[Instance],
    reason: str,
    now: datetime,
    done: Pass,
    why: str,
) -> None:
    for instance in chosen:
        ref = str((instance.labels or {}).get("driver_ref") or _ref_of(driver, instance))
        with transaction.atomic():
            termination = Termination.objects.create(
                group=group,
                instance=instance,
                instance_label=str(instance),
                driver_ref=ref,
                reason=reason,
                chosen_because=why[:500],
                started_at=now,
            )
            Instance.objects.filter(pk=instance.pk).update(lifecycle=Lifecycle.DRAINING)
        done.chosen.append(termination.pk)
        _step_termination(group, driver, router, termination, now, done)


def _ref_of(driver: InstanceDriver, instance: Instance) -> str:
    """The driver's id of an instance Signalbox did not launch (seeded, registered)."""
    try:
        for running in driver.running():
            if running.host == instance.host and running.port == instance.port:
                return running.ref
    except ScalingDriverError:
        pass
    return ""


def _step_termination(
    group: ScalingGroup,
    driver: InstanceDriver,
    router: Driver | None,
    termination: Termination,
    now: datetime,
    done: Pass,
) -> None:
    state = termination.state
    try:
        if state == TerminationState.DRAINING:
            _start_drain(driver, router, termination, now)
        elif state == TerminationState.CONFIRMING:
            _confirm_drain(group, driver, router, termination, now)
        elif state == TerminationState.AWAITING_READY:
            _await_ready(termination, now)
        if termination.state == TerminationState.STOPPING:
            _stop(group, driver, router, termination, now, done)
    except (DriverError, ScalingDriverError) as exc:
        termination.message = f"{termination.get_state_display()}: {exc}"[:500]
        termination.save(update_fields=["message"])
        done.errors.append(str(exc))


def _start_drain(
    driver: InstanceDriver, router: Driver | None, termination: Termination, now: datetime
) -> None:
    instance = termination.instance
    if router is None and driver.routes_traffic and termination.driver_ref:
        driver.route_out(termination.driver_ref)
    if router is not None and instance is not None:
        routing.drain(router, instance)
        found = routing.counters(router, instance)
        termination.router_counters_at_start = found.as_json() if found else {}
        termination.router_counters_last = termination.router_counters_at_start
    termination.state = TerminationState.CONFIRMING
    termination.save(
        update_fields=["state", "router_counters_at_start", "router_counters_last", "message"]
    )


def _confirm_drain(
    group: ScalingGroup,
    driver: InstanceDriver,
    router: Driver | None,
    termination: Termination,
    now: datetime,
) -> None:
    instance = termination.instance
    confirmed, note = True, "no traffic router: nothing to drain"
    timed_out = now >= termination.started_at + timedelta(seconds=group.drain_timeout_seconds)
    if router is None and driver.routes_traffic and termination.driver_ref:
        routed_out = driver.routed_out(termination.driver_ref)
        confirmed = routed_out or timed_out
        note = (
            "the platform stopped routing to it"
            if routed_out
            else "drain timeout: the platform still routed to it"
        )
    if router is not None and instance is not None:
        found = routing.counters(router, instance)
        last = routing.Counters.from_json(termination.router_counters_last)
        if found is None:
            note = "the router does not list the instance"
        else:
            quiet = found.sessions == 0 and last is not None and found.responses == last.responses
            confirmed = quiet or timed_out
            note = (
                "the router stopped routing to it"
                if quiet
                else "drain timeout: the router still routed to it "
                f"({found.responses - (last.responses if last else 0)} response(s) since the "
                f"last read, {found.sessions} session(s) open)"
            )
            termination.router_counters_last = found.as_json()
    if not confirmed:
        termination.save(update_fields=["router_counters_last"])
        return
    termination.drain_confirmed_at = now
    termination.seconds_to_stop_routing = round((now - termination.started_at).total_seconds(), 2)
    termination.message = note[:500]
    token = issue_token(termination)
    termination.state = TerminationState.AWAITING_READY
    termination.lifecycle_deadline_at = now + timedelta(seconds=group.lifecycle_timeout_seconds)
    termination.save()
    if instance is not None and termination.driver_ref:
        if driver.holds_termination:
            # AWS: start terminating now; the hook holds it in Terminating:Wait until the
            # instance is ready (heartbeats extend the hold), then lifecycle_complete.
            driver.terminate(termination.driver_ref, group.termination_grace_seconds)
        driver.notify_draining(termination.driver_ref, drain_notice(termination, token))


def drain_notice(termination: Termination, token: str) -> dict[str, object]:
    """What an instance is told when it is draining (the webhook form of the handshake)."""
    base = settings.SIGNALBOX_BASE_URL.rstrip("/")
    instance_id = termination.instance_id
    return {
        "state": "draining",
        "instance": instance_id,
        "ready_url": base + reverse("instance-ready-to-terminate", args=[instance_id]),
        "heartbeat_url": base + reverse("instance-lifecycle-heartbeat", args=[instance_id]),
        "lifecycle_url": base + reverse("instance-lifecycle", args=[instance_id]),
        "token": token,
        "heartbeat_seconds": termination.group.lifecycle_timeout_seconds,
        "deadline": termination.lifecycle_deadline_at.isoformat()
        if termination.lifecycle_deadline_at
        else None,
    }


def _await_ready(termination: Termination, now: datetime) -> None:
    if termination.ready_at is not None:
        termination.ending = Ending.READY
    elif termination.lifecycle_deadline_at is not None and now >= termination.lifecycle_deadline_at:
        termination.ending = Ending.TIMED_OUT
    else:
        return
    termination.state = TerminationState.STOPPING
    termination.save(update_fields=["state", "ending"])


def _stop(
    group: ScalingGroup,
    driver: InstanceDriver,
    router: Driver | None,
    termination: Termination,
    now: datetime,
    done: Pass,
) -> None:
    instance = termination.instance
    final = None
    if router is not None and instance is not None:
        try:
            final = routing.counters(router, instance)
        except DriverError:
            final = None
    if termination.driver_ref:
        driver.terminate(termination.driver_ref, group.termination_grace_seconds)
        driver.lifecycle_complete(termination.driver_ref)
    elif not termination.ending:
        termination.ending = Ending.GONE
    start = routing.Counters.from_json(termination.router_counters_at_start)
    if final is not None and start is not None:
        termination.requests_during_drain = max(0, final.responses - start.responses)
        termination.errors_during_drain = max(0, final.errors - start.errors)
    if router is not None and instance is not None:
        try:
            routing.forget(router, instance)
        except DriverError as exc:
            termination.message = f"stopped; the router kept its server: {exc}"[:500]
    if instance is not None:
        instance.deregister()
    termination.state = TerminationState.TERMINATED
    termination.stopped_at = timezone.now()
    termination.token_hash = ""
    termination.save()
    done.terminated.append(termination.pk)
    report = termination.report()
    ending = termination.get_ending_display() if termination.ending else "stopped"
    publish(
        ScalingEvent.INSTANCE_TERMINATED,
        subject=group,
        service=group.service,
        environment=group.environment,
        message=f"{group}: {termination.instance_label} terminated ({ending}); "
        f"{report['requests_during_drain'] if report['requests_during_drain'] is not None else '?'}"
        f" request(s) during the drain, "
        f"{report['errors_during_drain'] if report['errors_during_drain'] is not None else '?'}"
        " 5xx",
        payload={"termination": termination.pk, "report": report},
    )


# -- the handshake ------------------------------------------------------------------------------


def issue_token(termination: Termination) -> str:
    """A new lifecycle token for this termination (only its hash is kept)."""
    secret = secrets.token_urlsafe(24)
    termination.token_hash = _hash(secret)
    return f"{TOKEN_PREFIX}_{termination.pk}_{secret}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def termination_for_token(value: str) -> Termination | None:
    """The open termination a lifecycle token answers for, if it is genuine."""
    prefix, _, rest = value.partition("_")
    pk, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or not pk.isdigit() or not secret:
        return None
    termination = (
        Termination.objects.select_related("group", "instance")
        .filter(pk=int(pk), state__in=TERMINATION_OPEN)
        .first()
    )
    if termination is None or not termination.token_hash:
        return None
    if not hmac.compare_digest(termination.token_hash, _hash(secret)):
        return None
    return termination


def open_termination(instance: Instance) -> Termination | None:
    return (
        Termination.objects.select_related("group")
        .filter(instance=instance, state__in=TERMINATION_OPEN)
        .first()
    )


def ready_to_terminate(termination: Termination, reason: str = "") -> Termination:
    """The instance says it is done; idempotent (a repeat changes nothing)."""
    with transaction.atomic():
        locked = Termination.objects.select_for_update().get(pk=termination.pk)
        if locked.ready_at is None:
            locked.ready_at = timezone.now()
            if reason:
                said = f"instance: {reason}"
                locked.message = (f"{locked.message}; {said}" if locked.message else said)[:500]
            locked.save(update_fields=["ready_at", "message"])
            if locked.instance_id is not None:
                Instance.objects.filter(pk=locked.instance_id).update(
                    lifecycle=Lifecycle.READY_TO_TERMINATE
                )
    wake(locked.group)
    return locked


def heartbeat(termination: Termination, driver: InstanceDriver | None = None) -> Termination:
    """The instance is still finishing: the wait restarts, within AWS's bounds."""
    with transaction.atomic():
        locked = (
            Termination.objects.select_for_update().select_related("group").get(pk=termination.pk)
        )
        now = timezone.now()
        timeout = timedelta(seconds=locked.group.lifecycle_timeout_seconds)
        cap = locked.started_at + min(MAX_LIFECYCLE, timeout * MAX_HEARTBEATS)
        locked.last_heartbeat_at = now
        if locked.state == TerminationState.AWAITING_READY:
            locked.lifecycle_deadline_at = min(now + timeout, cap)
        locked.save(update_fields=["last_heartbeat_at", "lifecycle_deadline_at"])
    if driver is not None and locked.driver_ref:
        driver.lifecycle_heartbeat(locked.driver_ref)
    return locked


def lifecycle_of(instance: Instance) -> dict[str, object]:
    """What an instance polls: whether it should keep serving, and if not, until when."""
    termination = open_termination(instance)
    if termination is None:
        state = {
            Lifecycle.LAUNCHING: "launching",
            Lifecycle.DEREGISTERED: "terminated",
        }.get(Lifecycle(instance.lifecycle), "in_service")
        return {"instance": instance.pk, "state": state}
    phase = {
        TerminationState.DRAINING: "draining",
        TerminationState.CONFIRMING: "draining",
        TerminationState.AWAITING_READY: "terminate_when_ready",
        TerminationState.STOPPING: "stopping",
    }[TerminationState(termination.state)]
    return {
        "instance": instance.pk,
        "state": phase,
        "since": termination.started_at.isoformat(),
        "deadline": termination.lifecycle_deadline_at.isoformat()
        if termination.lifecycle_deadline_at
        else None,
        "ready_at": termination.ready_at.isoformat() if termination.ready_at else None,
        "heartbeat_seconds": termination.group.lifecycle_timeout_seconds,
    }


# -- rolling restarts ---------------------------------------------------------------------------


def _schedule_restart(group: ScalingGroup, now: datetime) -> None:
    if not group.restart_every_seconds or group.restart_started_at is not None:
        return
    if group.next_restart_at is None:
        ScalingGroup.objects.filter(pk=group.pk).update(
            next_restart_at=now + timedelta(seconds=group.restart_every_seconds)
        )
        return
    if group.next_restart_at <= now:
        group.restart_started_at = now
        ScalingGroup.objects.filter(pk=group.pk).update(restart_started_at=now)
        publish(
            ScalingEvent.RESTART_STARTED,
            subject=group,
            service=group.service,
            environment=group.environment,
            message=f"{group}: scheduled rolling restart (every "
            f"{group.restart_every_seconds / 3600:g} h)",
        )


def _finish_restart(group: ScalingGroup, now: datetime) -> None:
    started = group.restart_started_at
    assert started is not None
    following = (
        now + timedelta(seconds=group.restart_every_seconds)
        if group.restart_every_seconds
        else None
    )
    ScalingGroup.objects.filter(pk=group.pk).update(
        restart_started_at=None, next_restart_at=following
    )
    group.restart_started_at = None
    publish(
        ScalingEvent.RESTART_FINISHED,
        subject=group,
        service=group.service,
        environment=group.environment,
        message=f"{group}: rolling restart finished in {(now - started).total_seconds():.0f}s",
    )


def _driver_error(group: ScalingGroup, message: str, done: Pass) -> None:
    done.errors.append(message)
    logger.warning("%s: %s", group, message)
    recent = Event.objects.filter(
        action=ScalingEvent.DRIVER_ERROR,
        subject_type=ScalingGroup._meta.label_lower,
        subject_id=str(group.pk),
        created_at__gte=timezone.now() - DRIVER_ERROR_EVERY,
    )
    if recent.exists():
        return
    publish(
        ScalingEvent.DRIVER_ERROR,
        subject=group,
        service=group.service,
        environment=group.environment,
        message=f"{group}: {message}",
    )
