"""Canary health: the new version's instances pass their health checks."""

from __future__ import annotations

from deployments.analysis.base import AnalysisProvider, Context, Result
from deployments.choices import Verdict

DEFAULT_MAX_FAILING = 0
DEFAULT_ALLOW_WARN = True  # a warning instance still serves; only `fail` counts against it


class CanaryHealth(AnalysisProvider):
    """Fails when more than `max_failing` canary instances fail (or warn, unless allowed);
    inconclusive while any has no result yet."""

    def measure(self, ctx: Context) -> Result:
        from health.services import instance_status

        max_failing = int(ctx.metric.get("max_failing", DEFAULT_MAX_FAILING))
        allow_warn = bool(ctx.metric.get("allow_warn", DEFAULT_ALLOW_WARN))
        threshold = f"<= {max_failing} failing"
        targets = {t.instance_id: t for t in ctx.canary if t.instance_id is not None}
        if not targets:
            return Result.no_data(
                f"no instances of version {ctx.rollout.to_version} to check", threshold=threshold
            )
        statuses = instance_status(list(targets))
        bad_states = {"fail"} if allow_warn else {"fail", "warn"}
        failing = {i: s for i, s in statuses.items() if s in bad_states}
        unknown = [i for i in targets if statuses.get(i, "unknown") == "unknown"]
        detail = {targets[i].address: statuses.get(i, "unknown") for i in targets}
        if len(failing) > max_failing:
            names = ", ".join(f"{targets[i].address} ({s})" for i, s in sorted(failing.items()))
            return Result(
                Verdict.FAIL,
                f"{len(failing)} of {len(targets)} new instances fail their health checks: {names}",
                value=len(failing),
                threshold=threshold,
                detail=detail,
            )
        if unknown:
            names = ", ".join(targets[i].address for i in unknown)
            return Result.no_data(
                f"no health result yet for {names}",
                value=len(failing),
                threshold=threshold,
                detail=detail,
            )
        return Result(
            Verdict.PASS,
            f"{len(targets) - len(failing)} of {len(targets)} new instances healthy",
            value=len(failing),
            threshold=threshold,
            detail=detail,
        )
