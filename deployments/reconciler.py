"""The reconciler: claim due rollouts, and advance each one step per run.

Level-triggered, as ARCHITECTURE.md says: the row holds the truth (state, step, due time,
lease); a message only says "look at rollout N". A run locks the row, checks it is due,
does one step (driver calls are absolute, so doing one twice is harmless), writes the
next due time, and lets go. A killed worker's row is picked up again when its lease ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog.choices import Lifecycle
from catalog.models import Instance
from controlplane.env import env_int
from controlplane.events import publish
from deployments.analysis import PROVIDERS, Context, Result
from deployments.choices import (
    ACTIVE_STATES,
    AnalysisState,
    PauseCause,
    RolloutState,
    StepKind,
    StepOutcome,
    Verdict,
)
from deployments.drivers import driver_for
from deployments.drivers.base import Driver, DriverError, Split, Target
from deployments.models import AnalysisRun, Measurement, Rollout, RolloutStep
from deployments.strategies import DEFAULT_METRIC, describe_step, metric_settings, step_kind

logger = logging.getLogger(__name__)

# Longer than any one step (driver and provider timeouts are seconds); also how long a
# killed worker's rollout waits before another worker takes it over.
LEASE = timedelta(seconds=env_int("SIGNALBOX_ROLLOUT_LEASE_SECONDS", 30, minimum=1))
CLAIM_BATCH = 200
# The claim looks this far ahead and queues what it finds with an ETA of its due time, so
# a timed step starts on time rather than up to a tick late. Kept short: Celery holds ETA
# messages in the worker, and many far-off ones there slowed the queue behind them (the
# bench measured step starts seconds late with a 60 s horizon).
CLAIM_HORIZON = timedelta(seconds=1)
# A run this close to its due time counts as due: ETA timers and hosts' clocks differ a little.
CLOCK_SLACK = timedelta(milliseconds=50)
MAX_DRIVER_BACKOFF = 30  # seconds between retries of a failing router
ROUTABLE = (Lifecycle.REGISTERED, Lifecycle.ACTIVE, Lifecycle.STALE)

ENDING_EVENTS = {
    RolloutState.ROLLED_BACK: "rollout.rolled_back",
    RolloutState.ABORTED: "rollout.aborted",
    RolloutState.FAILED: "rollout.failed",
}

Scheduler = Callable[[int, datetime], None]


@dataclass
class Outcome:
    """What one run did, for logs, tests and the bench."""

    did: str
    next_action_at: datetime | None = None
    measured: list[str] = field(default_factory=list)


@dataclass
class MeasureJob:
    """Metrics to read outside the row lock (providers call slow things: Prometheus, hooks)."""

    run_id: int
    revision: int
    metrics: list[dict[str, Any]]
    contexts: list[Context]


def claim_due(
    now: datetime | None = None, limit: int = CLAIM_BATCH, horizon: timedelta = CLAIM_HORIZON
) -> list[tuple[int, datetime]]:
    """Lease the rollouts due within `horizon` that nobody holds: [(id, due time)].

    The caller queues one run per id, due at that time; the lease lasts until then plus
    LEASE, after which the row is claimable again (a killed worker's, say).
    """
    now = now or timezone.now()
    with transaction.atomic():
        rows = (
            Rollout.objects.select_for_update(skip_locked=True)
            .filter(state__in=ACTIVE_STATES, next_action_at__lte=now + horizon)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .order_by("next_action_at")
            .values_list("id", "next_action_at")[:limit]
        )
        due = [(rollout_id, at) for rollout_id, at in rows if at is not None]
        for rollout_id, at in due:
            Rollout.objects.filter(id=rollout_id).update(lease_until=max(at, now) + LEASE)
    return due


def advance(rollout_id: int, schedule: Scheduler | None = None) -> Outcome:
    """Do the one step that is due for this rollout, if any.

    `schedule(id, at)` queues the next run when it is due soon (the fast path); without it
    the lease is released and the beat's claim finds the row when it is due.
    """
    job: MeasureJob | None = None
    with transaction.atomic():
        rollout = _locked(rollout_id)
        if rollout is None:
            return Outcome("gone")
        now = timezone.now()
        if not rollout.is_active or rollout.next_action_at is None:
            return Outcome("not due", rollout.next_action_at)
        if rollout.next_action_at > now + CLOCK_SLACK:
            # Early (a message for a time that changed since): let the next claim take it.
            if rollout.lease_until is not None:
                Rollout.objects.filter(pk=rollout.pk).update(lease_until=None)
            return Outcome("not due", rollout.next_action_at)
        now = max(now, rollout.next_action_at)
        due_at = rollout.next_action_at
        job, did = _run(rollout, now, due_at)
        if job is None:
            _finish_run(rollout, now, schedule)
            return Outcome(did, rollout.next_action_at)
        # Keep the lease while measuring, so the beat does not hand the row to another worker.
        rollout.lease_until = now + LEASE
        rollout.save(update_fields=["lease_until"])
    results = [(m, _measure(m, ctx)) for m, ctx in zip(job.metrics, job.contexts, strict=True)]
    with transaction.atomic():
        rollout = _locked(rollout_id)
        if rollout is None:
            return Outcome("gone")
        now = timezone.now()
        if rollout.revision != job.revision:
            # A person acted while we measured (paused, aborted...): the readings are moot.
            return Outcome("superseded", rollout.next_action_at)
        _record(rollout, job, results, now)
        _finish_run(rollout, now, schedule)
        return Outcome("measured", rollout.next_action_at, [m["name"] for m in job.metrics])


def kick(rollout_id: int) -> None:
    """Queue a run now (after the caller's transaction commits); the beat is the fallback."""

    def send() -> None:
        from deployments.tasks import advance as advance_task

        try:
            advance_task.apply_async(args=(rollout_id,))
        except Exception:
            logger.warning("could not queue rollout %s; the beat will pick it up", rollout_id)

    transaction.on_commit(send)


def celery_schedule(rollout_id: int, at: datetime) -> None:
    """Queue a run for `at` (no ETA when it is due already: it goes straight to a worker)."""
    from deployments.tasks import advance as advance_task

    try:
        if at <= timezone.now():
            advance_task.apply_async(args=(rollout_id,))
        else:
            advance_task.apply_async(args=(rollout_id,), eta=at)
    except Exception:
        logger.warning("could not queue rollout %s for %s; the beat will", rollout_id, at)


def _locked(rollout_id: int) -> Rollout | None:
    return (
        Rollout.objects.select_for_update(of=("self",))
        .select_related("service", "service__team", "environment", "router", "router__router")
        .filter(pk=rollout_id)
        .first()
    )


def _finish_run(rollout: Rollout, now: datetime, schedule: Scheduler | None) -> None:
    at = rollout.next_action_at
    # Due at once (the next step): queue it now rather than wait for the next claim.
    fast = schedule is not None and rollout.is_active and at is not None and at <= now
    rollout.lease_until = at + LEASE if fast and at is not None else None
    rollout.save()
    if fast and at is not None and schedule is not None:
        rollout_id = rollout.pk
        transaction.on_commit(lambda: schedule(rollout_id, at))


# The state machine -------------------------------------------------------------------------


def _run(rollout: Rollout, now: datetime, due_at: datetime) -> tuple[MeasureJob | None, str]:
    if (
        rollout.state != RolloutState.ROLLING_BACK
        and rollout.deadline_at is not None
        and now >= rollout.deadline_at
    ):
        minutes = rollout.progress_deadline_seconds / 60
        begin_rollback(
            rollout,
            RolloutState.FAILED,
            f"progress deadline ({minutes:g} min) passed at step {rollout.step_label}"
            + (f": {rollout.message}" if rollout.message else ""),
            now=now,
        )
    if rollout.state == RolloutState.ROLLING_BACK:
        return None, _rollback_step(rollout, now, due_at)
    if rollout.state == RolloutState.PAUSED:
        if rollout.paused_for != PauseCause.DRIVER_ERROR:
            # Woken only to watch the deadline (inconclusive), or not at all (a person's pause).
            rollout.next_action_at = rollout.deadline_at
            return None, "still paused"
        rollout.state = RolloutState.PROGRESSING  # retry the step the router failed
    if rollout.state == RolloutState.PENDING:
        rollout.state = RolloutState.PROGRESSING
        rollout.started_at = now
    try:
        return _progress(rollout, now, due_at)
    except DriverError as exc:
        _driver_failed(rollout, now, str(exc))
        return None, "driver error"


def _progress(rollout: Rollout, now: datetime, due_at: datetime) -> tuple[MeasureJob | None, str]:
    step = rollout.current_step
    if step is None:
        return None, _finalize(rollout, now, due_at)
    kind = step_kind(step)
    spec = step[kind]
    row = _step_row(rollout, kind, spec, now, due_at)
    if kind == StepKind.SET_WEIGHT:
        _apply(rollout, int(spec), now)
        _driver_recovered(rollout, now)
        _complete_step(rollout, row, now)
        return None, f"set weight {spec}"
    if kind == StepKind.PAUSE:
        return None, _pause_step(rollout, row, spec, now)
    if kind == StepKind.ANALYSIS:
        job = _analysis_step(rollout, row, spec, now)
        return job, "analysis started" if job is None else "measuring"
    if kind == StepKind.PREVIEW:
        stable, canary = targets(rollout)
        _apply(rollout, 0, now)
        driver_of(rollout).ready(canary, rollout.router_state)
        _driver_recovered(rollout, now)
        _complete_step(rollout, row, now)
        return None, "preview"
    if kind == StepKind.DRAIN_STABLE:
        stable, canary = targets(rollout)
        driver_of(rollout).drain(stable, rollout.router_state)
        _driver_recovered(rollout, now)
        _complete_step(rollout, row, now)
        return None, "drained stable"
    raise ValueError(f"rollout {rollout.pk} has an unknown step {kind!r}")


def _finalize(rollout: Rollout, now: datetime, due_at: datetime) -> str:
    row = _step_row(rollout, StepKind.FINALIZE, {}, now, due_at)
    if rollout.desired_weight != 100 or rollout.applied_weight != 100:
        _apply(rollout, 100, now)
    _driver_recovered(rollout, now)
    row.outcome, row.finished_at = StepOutcome.DONE, now
    row.applied_weight = rollout.applied_weight
    row.save()
    rollout.state = RolloutState.SUCCEEDED
    rollout.finished_at = now
    rollout.next_action_at = rollout.deadline_at = rollout.pause_until = None
    rollout.message = f"all traffic on {rollout.to_version}"
    rollout.revision += 1
    _publish("rollout.succeeded", rollout, message=f"{_name(rollout)} succeeded: {rollout.message}")
    return "succeeded"


def _rollback_step(rollout: Rollout, now: datetime, due_at: datetime) -> str:
    row = _step_row(rollout, StepKind.ROLLBACK, {}, now, due_at, index=rollout.step_index)
    try:
        _apply(rollout, 0, now)
    except DriverError as exc:
        # A rollback never gives up: weights must not be left unknown. Retry with backoff.
        rollout.driver_failures += 1
        rollout.next_action_at = now + _backoff(rollout.driver_failures)
        row.message = f"traffic router failed: {exc}"
        row.save()
        _publish(
            "rollout.driver_error",
            rollout,
            message=f"rollback of {_name(rollout)}: {exc}",
            error=str(exc),
        )
        return "rollback driver error"
    ending = RolloutState(rollout.ending or RolloutState.ROLLED_BACK)
    row.outcome, row.finished_at, row.applied_weight = StepOutcome.DONE, now, rollout.applied_weight
    row.save()
    rollout.state = ending
    rollout.finished_at = now
    rollout.driver_failures = 0
    rollout.paused_for = PauseCause.NONE
    rollout.next_action_at = rollout.deadline_at = rollout.pause_until = None
    rollout.revision += 1
    _publish(
        ENDING_EVENTS[ending],
        rollout,
        actor=None,
        message=f"{_name(rollout)} {ending.label.lower()}: all traffic back on "
        f"{rollout.from_version or 'stable'}. {rollout.message}",
        phase="completed",
    )
    return f"rolled back ({ending})"


def _pause_step(rollout: Rollout, row: RolloutStep, spec: dict[str, Any], now: datetime) -> str:
    seconds = spec.get("seconds")
    if seconds is None:
        pause(rollout, PauseCause.PROMOTION, f"waiting to be promoted ({rollout.step_label})", now)
        return "waiting for promotion"
    if rollout.pause_until is None:
        rollout.pause_until = now + timedelta(seconds=int(seconds))
        rollout.next_action_at = rollout.pause_until
        rollout.deadline_at = rollout.pause_until + timedelta(
            seconds=rollout.progress_deadline_seconds
        )
        return f"pausing {seconds}s"
    if now < rollout.pause_until:
        rollout.next_action_at = rollout.pause_until
        rollout.deadline_at = rollout.pause_until + timedelta(
            seconds=rollout.progress_deadline_seconds
        )
        return "still pausing"
    _complete_step(rollout, row, now)
    return "pause over"


def _analysis_step(
    rollout: Rollout, row: RolloutStep, spec: dict[str, Any], now: datetime
) -> MeasureJob | None:
    run = (
        rollout.analysis_runs.filter(step_index=rollout.step_index, state=AnalysisState.RUNNING)
        .order_by("-id")
        .first()
    )
    if run is None:
        metrics = [
            metric_settings(m)
            for m in (spec.get("metrics") or rollout.analysis or [DEFAULT_METRIC])
        ]
        stable, canary = targets(rollout)
        driver = _maybe_driver(rollout)
        progress: dict[str, Any] = {}
        longest = 0.0
        for metric in metrics:
            ctx = Context(rollout, metric, stable, canary, driver)
            try:
                baseline = PROVIDERS[metric["provider"]].begin(ctx)
            except Exception:
                logger.exception("rollout %s: %s could not begin", rollout.pk, metric["name"])
                baseline = {}
            progress[metric["name"]] = _fresh_progress(now + _interval(metric), baseline)
            need = metric["success_count"] + metric["failure_limit"]
            longest = max(longest, _interval(metric).total_seconds() * need)
        AnalysisRun.objects.create(
            rollout=rollout,
            step=row,
            step_index=rollout.step_index,
            metrics=metrics,
            progress=progress,
            started_at=now,
        )
        rollout.next_action_at = min(_at(p["next_at"]) for p in progress.values())
        # The deadline counts from when the analysis can first be done.
        rollout.deadline_at = now + timedelta(seconds=rollout.progress_deadline_seconds + longest)
        _publish(
            "rollout.step_started",
            rollout,
            message=f"{_name(rollout)}: analysis began",
            metrics=[m["name"] for m in metrics],
        )
        return None
    due = [
        m
        for m in run.metrics
        if not run.progress[m["name"]]["passed"] and _at(run.progress[m["name"]]["next_at"]) <= now
    ]
    if not due:
        rollout.next_action_at = _next_metric_time(run)
        return None
    stable, canary = targets(rollout)
    driver = _maybe_driver(rollout)
    contexts = [
        Context(rollout, m, stable, canary, driver, run.progress[m["name"]].get("baseline", {}))
        for m in due
    ]
    return MeasureJob(run.pk, rollout.revision, due, contexts)


def _measure(metric: dict[str, Any], ctx: Context) -> Result:
    try:
        return PROVIDERS[metric["provider"]].measure(ctx)
    except Exception as exc:  # a provider that breaks gives no data; it never passes
        logger.warning(
            "rollout %s: metric %s raised", ctx.rollout.pk, metric["name"], exc_info=True
        )
        return Result.no_data(f"{metric['provider']} could not measure: {exc}")


def _record(
    rollout: Rollout, job: MeasureJob, results: list[tuple[dict[str, Any], Result]], now: datetime
) -> None:
    run = AnalysisRun.objects.get(pk=job.run_id)
    rollout.revision += 1  # a slower duplicate measurement of the same moment is then dropped
    failed: tuple[dict[str, Any], Result] | None = None
    inconclusive: tuple[dict[str, Any], Result] | None = None
    readings = []
    for metric, result in results:
        progress = run.progress[metric["name"]]
        Measurement.objects.create(
            run=run,
            rollout=rollout,
            metric=metric["name"],
            provider=metric["provider"],
            value=result.value,
            threshold=result.threshold,
            verdict=result.verdict,
            reason=result.reason[:1000],
            detail=result.detail,
            measured_at=now,
        )
        readings.append(
            {
                "metric": metric["name"],
                "provider": metric["provider"],
                "value": result.value,
                "threshold": result.threshold,
                "verdict": result.verdict,
                "reason": result.reason,
            }
        )
        if result.baseline is not None:
            progress["baseline"] = result.baseline
        progress["next_at"] = (now + _interval(metric)).isoformat()
        if result.verdict == Verdict.PASS:
            progress["successes"] += 1
            progress["consecutive"] += 1
            progress["passed"] = progress["consecutive"] >= metric["success_count"]
        elif result.verdict == Verdict.FAIL:
            progress["failures"] += 1
            progress["consecutive"] = 0
            if progress["failures"] > metric["failure_limit"] and failed is None:
                failed = (metric, result)
        else:
            progress["inconclusive"] += 1
            progress["consecutive"] = 0
            inconclusive = inconclusive or (metric, result)
    _publish(
        "rollout.analysis",
        rollout,
        message=_readings_message(rollout, readings),
        measurements=readings,
    )
    if failed is not None:
        run.state, run.finished_at = AnalysisState.FAILED, now
        run.message = f"{failed[0]['name']}: {failed[1].reason}"[:1000]
        run.save()
        begin_rollback(
            rollout, RolloutState.ROLLED_BACK, f"analysis failed: {run.message}", now=now
        )
        return
    if inconclusive is not None:
        run.message = f"{inconclusive[0]['name']}: {inconclusive[1].reason}"[:1000]
        run.save()
        pause(
            rollout,
            PauseCause.INCONCLUSIVE,
            f"analysis has no data: {run.message}",
            now,
            keep_deadline=True,
        )
        return
    if all(p["passed"] for p in run.progress.values()):
        run.state, run.finished_at, run.message = AnalysisState.PASSED, now, "every metric passed"
        run.save()
        row = _step_row(rollout, StepKind.ANALYSIS, {}, now, now)
        _complete_step(rollout, row, now)
        return
    run.save()
    rollout.next_action_at = _next_metric_time(run)


# Shared moves, also used by actions.py -----------------------------------------------------


def begin_rollback(
    rollout: Rollout, ending: RolloutState, message: str, *, now: datetime, actor: Any = None
) -> None:
    """Start putting all traffic back on stable; the next run does it (and retries until done)."""
    rollout.state = RolloutState.ROLLING_BACK
    rollout.ending = ending
    rollout.message = message[:1000]
    rollout.paused_for = PauseCause.NONE
    rollout.next_action_at = now
    rollout.deadline_at = rollout.pause_until = None
    rollout.driver_failures = 0
    rollout.revision += 1
    rollout.step_runs.filter(outcome=StepOutcome.RUNNING).update(
        outcome=StepOutcome.SKIPPED, finished_at=now
    )
    rollout.analysis_runs.filter(state=AnalysisState.RUNNING).update(
        state=AnalysisState.CANCELLED, finished_at=now
    )
    _publish(
        ENDING_EVENTS[ending],
        rollout,
        actor=actor,
        message=f"{_name(rollout)}: rolling back: {message}",
        phase="started",
    )


def rollback_now(rollout: Rollout, now: datetime) -> None:
    """Restore stable weights at once, in the caller's transaction (an abort should not wait
    behind a busy queue); if the router fails, the reconciler retries as for any rollback."""
    _rollback_step(rollout, now, now)


def pause(
    rollout: Rollout,
    cause: PauseCause,
    message: str,
    now: datetime,
    *,
    keep_deadline: bool = False,
    actor: Any = None,
) -> None:
    """Stop advancing; only the deadline (when kept) still wakes the rollout."""
    rollout.state = RolloutState.PAUSED
    rollout.paused_for = cause
    rollout.message = message[:1000]
    if not keep_deadline:
        rollout.deadline_at = None
    rollout.next_action_at = rollout.deadline_at
    rollout.revision += 1
    _publish(
        "rollout.paused",
        rollout,
        actor=actor,
        message=f"{_name(rollout)} paused: {message}",
        cause=cause,
    )


def complete_step(rollout: Rollout, now: datetime, outcome: StepOutcome = StepOutcome.DONE) -> None:
    """Close the current step's row (if any) and move on; the next run starts the next step."""
    row = rollout.step_runs.filter(index=rollout.step_index, outcome=StepOutcome.RUNNING).last()
    if row is not None:
        row.outcome, row.finished_at = outcome, now
        row.save(update_fields=["outcome", "finished_at"])
    rollout.analysis_runs.filter(step_index=rollout.step_index, state=AnalysisState.RUNNING).update(
        state=AnalysisState.CANCELLED, finished_at=now
    )
    _next(rollout, now)


def _complete_step(rollout: Rollout, row: RolloutStep, now: datetime) -> None:
    row.outcome, row.finished_at = StepOutcome.DONE, now
    if row.kind in (StepKind.SET_WEIGHT, StepKind.PREVIEW):
        row.desired_weight, row.applied_weight = rollout.desired_weight, rollout.applied_weight
    row.save()
    _next(rollout, now)


def _next(rollout: Rollout, now: datetime) -> None:
    rollout.step_index = min(rollout.step_index + 1, len(rollout.steps))
    rollout.pause_until = None
    rollout.next_action_at = now
    rollout.deadline_at = now + timedelta(seconds=rollout.progress_deadline_seconds)
    rollout.revision += 1


def _step_row(
    rollout: Rollout,
    kind: str,
    spec: Any,
    now: datetime,
    due_at: datetime,
    index: int | None = None,
) -> RolloutStep:
    index = rollout.step_index if index is None else index
    row = rollout.step_runs.filter(index=index, kind=kind, outcome=StepOutcome.RUNNING).last()
    if row is not None:
        return row
    row = RolloutStep.objects.create(
        rollout=rollout,
        index=index,
        kind=kind,
        spec=spec if isinstance(spec, dict) else {"value": spec},
        due_at=due_at,
        started_at=now,
        desired_weight=int(spec) if kind == StepKind.SET_WEIGHT else None,
    )
    if kind not in (StepKind.ANALYSIS, StepKind.ROLLBACK):
        step = rollout.current_step
        _publish(
            "rollout.step_started",
            rollout,
            message=f"{_name(rollout)}: step {index + 1}: {describe_step(step) or kind}",
            step=index,
            kind=kind,
        )
    return row


# Traffic ------------------------------------------------------------------------------------


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
    if rollout.router is None:
        raise DriverError("this rollout has no traffic route; add one for the service")
    return driver_for(rollout.router)


def _maybe_driver(rollout: Rollout) -> Driver | None:
    try:
        return driver_of(rollout)
    except DriverError:
        return None


def _apply(rollout: Rollout, percent: int, now: datetime) -> None:
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


def _driver_failed(rollout: Rollout, now: datetime, error: str) -> None:
    rollout.driver_failures += 1
    backoff = _backoff(rollout.driver_failures)
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
    _publish(
        "rollout.driver_error",
        rollout,
        message=f"{_name(rollout)}: {rollout.message}",
        error=error,
        failures=rollout.driver_failures,
    )


def _driver_recovered(rollout: Rollout, now: datetime) -> None:
    if rollout.driver_failures:
        rollout.driver_failures = 0
        rollout.paused_for = PauseCause.NONE
        rollout.message = "the traffic router answers again"
        _publish("rollout.resumed", rollout, message=f"{_name(rollout)}: {rollout.message}")


def _backoff(failures: int) -> timedelta:
    return timedelta(seconds=min(2 ** max(failures - 1, 0), MAX_DRIVER_BACKOFF))


# Small helpers ------------------------------------------------------------------------------


def _fresh_progress(next_at: datetime, baseline: dict[str, Any]) -> dict[str, Any]:
    return {
        "successes": 0,
        "consecutive": 0,
        "failures": 0,
        "inconclusive": 0,
        "passed": False,
        "next_at": next_at.isoformat(),
        "baseline": baseline,
    }


def _interval(metric: dict[str, Any]) -> timedelta:
    return timedelta(seconds=float(metric["interval"]))


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _next_metric_time(run: AnalysisRun) -> datetime:
    return min(_at(p["next_at"]) for p in run.progress.values() if not p["passed"])


def _name(rollout: Rollout) -> str:
    return f"{rollout.service.slug} {rollout.to_version} in {rollout.environment.slug}"


def _readings_message(rollout: Rollout, readings: list[dict[str, Any]]) -> str:
    parts = [f"{r['metric']} {r['verdict']}" for r in readings]
    return f"{_name(rollout)}: " + ", ".join(parts)


def _publish(
    action: str, rollout: Rollout, *, actor: Any = None, message: str = "", **extra: Any
) -> None:
    payload = {
        "rollout": rollout.pk,
        "state": rollout.state,
        "step": rollout.step_index,
        "desired_weight": rollout.desired_weight,
        "applied_weight": rollout.applied_weight,
        **extra,
    }
    publish(action, actor=actor, subject=rollout, message=message, payload=payload)
