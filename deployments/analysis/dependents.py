"""Dependents: what the services that call this one see of it while the new version serves.

Three kinds of evidence, each judged against the time before the new version took traffic:
- the dependents' health (a dependent that became unhealthy fails the reading);
- their circuits towards this service (one that opened fails it);
- each caller's own figures for its calls to this service, from its circuit's reports
  (failure rate, slow-call rate, p99), against the same caller's figures before the rollout
  first sent traffic to the new version, held to `callers.Limits`.

Circuits do not tell the versions of the callee apart (a caller sees one service behind its
router), so "before" is the only comparison: at 50 % a version failing 60 % of its calls
shows as a caller's 30 %. What was already bad before is not blamed on the new version.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from controlplane import outbound
from deployments.analysis import callers
from deployments.analysis.base import AnalysisProvider, Context, Result
from deployments.choices import Provider, StepKind, StepOutcome, Verdict

if TYPE_CHECKING:
    from circuits.services import CallFigures
    from deployments.models import Rollout

OPEN_STATES = {"open", "half_open"}  # forced_open is an operator's choice, not the canary's doing
DEFAULT_ALLOW_DEGRADED = False
REASON_CHARS = 500  # the stored reason: a bounded, printable excerpt (circuit names are free text)
MAX_CALLERS_IN_DETAIL = 50
# How far back a minute of circuit history may serve as "before" when no report of the
# moment is left (a caller reported again between the weight change and the analysis).
BEFORE_HISTORY = timedelta(minutes=10)


def _unhealthy(ctx: Context) -> dict[str, str]:
    from health.services import service_healths

    rollout = ctx.rollout
    allow_degraded = bool(ctx.metric.get("allow_degraded", DEFAULT_ALLOW_DEGRADED))
    bad = {"down"} if allow_degraded else {"down", "degraded"}
    healths = service_healths(rollout.environment_id)
    return {
        slug: healths[(pk, rollout.environment_id)]
        for pk, slug in rollout.service.dependents.values_list("pk", "slug")
        if healths.get((pk, rollout.environment_id)) in bad
    }


def _open_circuits(ctx: Context) -> dict[str, str]:
    from circuits.services import circuits_towards

    rollout = ctx.rollout
    return {
        f"{c.caller}:{c.name}": c.state
        for c in circuits_towards(rollout.service_id, rollout.environment_id)
        if c.state in OPEN_STATES
    }


def _dependent_count(ctx: Context) -> int:
    return ctx.rollout.service.dependents.count()


def traffic_moves(rollout: Rollout) -> tuple[datetime | None, datetime | None]:
    """(when the rollout first sent traffic to the new version, when its weight last changed)."""
    rows = list(
        rollout.step_runs.filter(kind=StepKind.SET_WEIGHT, outcome=StepOutcome.DONE)
        .order_by("started_at", "id")
        .values_list("desired_weight", "started_at", "finished_at")
    )
    first = next((started for weight, started, _ in rows if weight), None)
    last = max((finished for _, _, finished in rows if finished is not None), default=None)
    return first, last


def _earlier_before(rollout: Rollout) -> dict[str, Any] | None:
    """The "before" an earlier analysis of this rollout took, when there was one."""
    for run in rollout.analysis_runs.order_by("id"):
        for metric in run.metrics:
            if metric.get("provider") != Provider.DEPENDENTS:
                continue
            baseline = run.progress.get(metric.get("name"), {}).get("baseline", {})
            if baseline.get("before"):
                return dict(baseline)
    return None


def _before(rollout: Rollout, at: datetime) -> dict[str, Any]:
    """Each caller's figures just before `at`: its reports of then, else its last minute."""
    from circuits.services import calls_towards, samples_before

    service, environment = rollout.service_id, rollout.environment_id
    figures = {
        str(f.circuit_id): {**f.as_dict(), "from": "reports"}
        for f in calls_towards(service, environment, reported_before=at)
        if f.reports
    }
    for pk, f in samples_before(service, environment, at, BEFORE_HISTORY).items():
        figures.setdefault(str(pk), {**f.as_dict(), "from": "history"})
    return figures


def _edge(figures: CallFigures, callee: str) -> str:
    named = "" if figures.circuit == callee else f" [{figures.circuit}]"
    return outbound.excerpt(f"{figures.caller} → {callee}{named}", 120)


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


class Dependents(AnalysisProvider):
    """Fails when, since the new version took traffic, a dependent became unhealthy, a
    circuit towards this service opened, or a caller's calls to it broke a limit."""

    def begin(self, ctx: Context) -> dict[str, Any]:
        now = timezone.now()
        first_move, last_move = traffic_moves(ctx.rollout)
        earlier = _earlier_before(ctx.rollout)
        if earlier is not None:
            before, before_at = earlier["before"], earlier.get("before_at")
        else:
            at = first_move or now
            before, before_at = _before(ctx.rollout, at), at.isoformat()
        return {
            "unhealthy": sorted(_unhealthy(ctx)),
            "open": sorted(_open_circuits(ctx)),
            "since": (last_move or now).isoformat(),
            "before": before,
            "before_at": before_at,
        }

    def measure(self, ctx: Context) -> Result:
        limits = callers.Limits.of(ctx.metric)
        threshold = outbound.excerpt(limits.describe())
        unhealthy = _unhealthy(ctx)
        circuits = _open_circuits(ctx)
        before_unhealthy = set(ctx.baseline.get("unhealthy", []))
        before_open = set(ctx.baseline.get("open", []))
        new_unhealthy = {s: h for s, h in unhealthy.items() if s not in before_unhealthy}
        new_open = {c: s for c, s in circuits.items() if c not in before_open}
        calls = _CallReading(ctx, limits)
        detail = {
            "unhealthy": unhealthy,
            "open_circuits": circuits,
            "already_bad": sorted(before_unhealthy | before_open),
            "since": ctx.baseline.get("since"),
            "before_at": ctx.baseline.get("before_at"),
            "callers": calls.detail[:MAX_CALLERS_IN_DETAIL],
        }
        changed = [f"{s} is {h}" for s, h in sorted(new_unhealthy.items())]
        changed += [f"circuit {c} is {s}" for c, s in sorted(new_open.items())]
        problems = calls.problems + (
            ["since the step began: " + "; ".join(changed)] if changed else []
        )
        value = float(len(calls.problems) + len(changed))
        if problems:
            return Result(
                Verdict.FAIL,
                outbound.excerpt("; ".join(problems), REASON_CHARS),
                value=value,
                threshold=threshold,
                detail=detail,
            )
        health = f"{_dependent_count(ctx)} dependent service(s) healthy, no circuit opened"
        callee = ctx.rollout.service.slug
        if not calls.reporting:
            reason = f"{health}; no caller reports its calls to {callee} (no circuit data)"
            return Result(Verdict.PASS, reason, value=value, threshold=threshold, detail=detail)
        if not calls.judged:
            return Result.no_data(
                outbound.excerpt(
                    f"no caller's calls to {callee} to judge yet: " + "; ".join(calls.unjudged),
                    REASON_CHARS,
                ),
                value=value,
                threshold=threshold,
                detail=detail,
            )
        reason = "; ".join([*calls.judged, *calls.unjudged, health])
        return Result(
            Verdict.PASS,
            outbound.excerpt(reason, REASON_CHARS),
            value=value,
            threshold=threshold,
            detail=detail,
        )


class _CallReading:
    """Every caller's figures since the weight changed, judged against before."""

    def __init__(self, ctx: Context, limits: callers.Limits) -> None:
        from circuits.services import calls_towards

        rollout = ctx.rollout
        callee = rollout.service.slug
        since = _moment(ctx.baseline.get("since"))
        before = ctx.baseline.get("before", {})
        self.problems: list[str] = []
        self.judged: list[str] = []
        self.unjudged: list[str] = []
        self.detail: list[dict[str, Any]] = []
        # Callers that report at all; a circuit whose callers went quiet is no evidence.
        self.reporting = {
            f.circuit_id
            for f in calls_towards(rollout.service_id, rollout.environment_id)
            if f.reports
        }
        for figures in calls_towards(
            rollout.service_id, rollout.environment_id, reported_after=since
        ):
            if figures.circuit_id not in self.reporting:
                continue
            self._judge(figures, callee, before.get(str(figures.circuit_id)), limits)

    def _judge(
        self,
        figures: CallFigures,
        callee: str,
        before_data: dict[str, Any] | None,
        limits: callers.Limits,
    ) -> None:
        edge = _edge(figures, callee)
        now = callers.Figures(
            figures.calls, figures.failure_rate, figures.slow_call_rate, figures.latency_p99_ms
        )
        before = callers.Figures.of(before_data)
        row: dict[str, Any] = {
            "caller": figures.caller,
            "circuit": figures.circuit,
            "now": figures.as_dict(),
            "before": before_data,
        }
        self.detail.append(row)
        if figures.reports == 0:
            row["judged"] = "no report since the weight changed"
        elif figures.calls < limits.min_calls:
            row["judged"] = f"only {figures.calls} calls (need {limits.min_calls})"
        elif figures.failure_rate is None and figures.slow_call_rate is None:
            row["judged"] = "no failure rate reported yet"
        else:
            row["judged"] = "yes"
            if limits.reads_latency and (
                now.latency_p99_ms is None or before is None or before.latency_p99_ms is None
            ):
                row["latency"] = "not judged: no p99 reported both now and before"
            found = callers.problems(edge, now, before, limits)
            self.problems += found
            if not found:
                self.judged.append(callers.summary(edge, now, before))
            return
        self.unjudged.append(f"{edge}: {row['judged']}")
