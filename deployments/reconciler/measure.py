"""Analysis steps: starting a run, picking the metrics due, measuring, and judging the readings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from deployments.analysis import PROVIDERS, Context, Result
from deployments.choices import (
    AnalysisState,
    PauseCause,
    RolloutEvent,
    RolloutState,
    StepKind,
    Verdict,
)
from deployments.models import AnalysisRun, Measurement, Rollout, RolloutStep
from deployments.reconciler.events import announce, rollout_name
from deployments.reconciler.step_rows import finish_step, step_row
from deployments.reconciler.traffic import maybe_driver, targets
from deployments.reconciler.transitions import begin_rollback, pause
from deployments.strategies import DEFAULT_METRIC, metric_settings

logger = logging.getLogger(__name__)

Reading = tuple[dict[str, Any], Result]


@dataclass
class MeasureJob:
    """Metrics to read outside the row lock (providers call slow things: Prometheus, hooks)."""

    run_id: int
    revision: int
    metrics: list[dict[str, Any]]
    contexts: list[Context]


def analysis_step(
    rollout: Rollout, row: RolloutStep, spec: dict[str, Any], now: datetime
) -> MeasureJob | None:
    """Start the step's analysis run, or hand back the metrics that are due to be measured."""
    run = (
        rollout.analysis_runs.filter(step_index=rollout.step_index, state=AnalysisState.RUNNING)
        .order_by("-id")
        .first()
    )
    if run is None:
        _begin(rollout, row, spec, now)
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
    driver = maybe_driver(rollout)
    contexts = [
        Context(rollout, m, stable, canary, driver, run.progress[m["name"]].get("baseline", {}))
        for m in due
    ]
    return MeasureJob(run.pk, rollout.revision, due, contexts)


def _begin(rollout: Rollout, row: RolloutStep, spec: dict[str, Any], now: datetime) -> None:
    metrics = [
        metric_settings(m) for m in (spec.get("metrics") or rollout.analysis or [DEFAULT_METRIC])
    ]
    stable, canary = targets(rollout)
    driver = maybe_driver(rollout)
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
    announce(
        RolloutEvent.STEP_STARTED,
        rollout,
        message=f"{rollout_name(rollout)}: analysis began",
        metrics=[m["name"] for m in metrics],
    )


def measure(job: MeasureJob) -> list[Reading]:
    """Read every metric of the job; called outside any transaction."""
    return [(m, _measure_one(m, ctx)) for m, ctx in zip(job.metrics, job.contexts, strict=True)]


def _measure_one(metric: dict[str, Any], ctx: Context) -> Result:
    try:
        return PROVIDERS[metric["provider"]].measure(ctx)
    except Exception as exc:  # a provider that breaks gives no data; it never passes
        logger.warning(
            "rollout %s: metric %s raised", ctx.rollout.pk, metric["name"], exc_info=True
        )
        return Result.no_data(f"{metric['provider']} could not measure: {exc}")


def record(rollout: Rollout, job: MeasureJob, results: list[Reading], now: datetime) -> None:
    """Store the readings, then fail, pause, pass the step, or wait for the next reading."""
    run = AnalysisRun.objects.get(pk=job.run_id)
    rollout.revision += 1  # a slower duplicate measurement of the same moment is then dropped
    failed: Reading | None = None
    inconclusive: Reading | None = None
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
    announce(
        RolloutEvent.ANALYSIS,
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
        row = step_row(rollout, StepKind.ANALYSIS, {}, now, now)
        finish_step(rollout, row, now)
        return
    run.save()
    rollout.next_action_at = _next_metric_time(run)


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


def _readings_message(rollout: Rollout, readings: list[dict[str, Any]]) -> str:
    parts = [f"{r['metric']} {r['verdict']}" for r in readings]
    return f"{rollout_name(rollout)}: " + ", ".join(parts)
