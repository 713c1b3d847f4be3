"""A web hook: POST the rollout to a URL; a 2xx answer passes, anything else fails."""

from __future__ import annotations

import httpx

from deployments.analysis.base import AnalysisProvider, Context, Result
from deployments.choices import Verdict


class WebHook(AnalysisProvider):
    """A timeout or an unreachable hook fails too: silence is not a yes."""

    def measure(self, ctx: Context) -> Result:
        rollout = ctx.rollout
        url = str(ctx.metric["url"])
        timeout = float(ctx.metric["timeout"])
        payload = {
            "rollout": rollout.pk,
            "service": rollout.service.slug,
            "environment": rollout.environment.slug,
            "from_version": rollout.from_version,
            "to_version": rollout.to_version,
            "step": rollout.step_index,
            "weight": rollout.applied_weight,
            "metric": ctx.metric["name"],
        }
        headers = {str(k): str(v) for k, v in (ctx.metric.get("headers") or {}).items()}
        try:
            response = httpx.post(url, json=payload, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            return Result(
                Verdict.FAIL, f"no answer from {url} within {timeout:g}s", threshold="2xx"
            )
        except httpx.HTTPError as exc:
            return Result(Verdict.FAIL, f"cannot reach {url}: {exc}", threshold="2xx")
        status = response.status_code
        if 200 <= status < 300:
            return Result(Verdict.PASS, f"{url} answered {status}", value=status, threshold="2xx")
        body = response.text[:200].strip()
        return Result(
            Verdict.FAIL,
            f"{url} answered {status}" + (f": {body}" if body else ""),
            value=status,
            threshold="2xx",
        )
