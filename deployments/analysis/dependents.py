"""Dependents: the services that call this one stay healthy, and their circuits to it closed."""

from __future__ import annotations

from typing import Any

from deployments.analysis.base import AnalysisProvider, Context, Result
from deployments.choices import Verdict

OPEN_STATES = {"open", "half_open"}  # forced_open is an operator's choice, not the canary's doing
DEFAULT_ALLOW_DEGRADED = False


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
    try:
        from circuits.services import circuits_towards
    except ImportError:  # circuits not installed: only health is evidence
        return {}
    rollout = ctx.rollout
    return {
        f"{c.caller}:{c.name}": c.state
        for c in circuits_towards(rollout.service_id, rollout.environment_id)
        if c.state in OPEN_STATES
    }


def _dependent_count(ctx: Context) -> int:
    return ctx.rollout.service.dependents.count()


class Dependents(AnalysisProvider):
    """Fails when a dependent became unhealthy, or a circuit towards this service opened,
    since the analysis began; what was already broken before is not blamed on the canary."""

    def begin(self, ctx: Context) -> dict[str, Any]:
        return {"unhealthy": sorted(_unhealthy(ctx)), "open": sorted(_open_circuits(ctx))}

    def measure(self, ctx: Context) -> Result:
        unhealthy = _unhealthy(ctx)
        circuits = _open_circuits(ctx)
        before_unhealthy = set(ctx.baseline.get("unhealthy", []))
        before_open = set(ctx.baseline.get("open", []))
        new_unhealthy = {s: h for s, h in unhealthy.items() if s not in before_unhealthy}
        new_open = {c: s for c, s in circuits.items() if c not in before_open}
        detail = {
            "unhealthy": unhealthy,
            "open_circuits": circuits,
            "already_bad": sorted(before_unhealthy | before_open),
        }
        problems = [f"{s} is {h}" for s, h in sorted(new_unhealthy.items())]
        problems += [f"circuit {c} is {s}" for c, s in sorted(new_open.items())]
        value = float(len(problems))
        if problems:
            return Result(
                Verdict.FAIL,
                "since the step began: " + "; ".join(problems),
                value=value,
                threshold="0 new problems",
                detail=detail,
            )
        count = _dependent_count(ctx)
        return Result(
            Verdict.PASS,
            f"{count} dependent service(s) healthy, no circuit opened",
            value=value,
            threshold="0 new problems",
            detail=detail,
        )
