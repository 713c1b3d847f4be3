"""A web hook: POST the rollout to a URL; a 2xx answer passes, anything else fails.

The URL is set by whoever starts the rollout (a `deploy` token): it goes through the
outbound guard, redirects are not followed, and only a short sanitised excerpt of an
unexpected answer is kept in the measurement."""

from __future__ import annotations

import httpx

from controlplane import outbound
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
            reply = outbound.request(
                "POST", url, json=payload, headers=headers, timeout=timeout, max_bytes=4096
            )
        except outbound.Refused as exc:
            return Result(Verdict.FAIL, f"not calling {url}: {exc}", threshold="2xx")
        except httpx.TimeoutException:
            return Result(
                Verdict.FAIL, f"no answer from {url} within {timeout:g}s", threshold="2xx"
            )
        except (httpx.HTTPError, OSError) as exc:
            return Result(Verdict.FAIL, f"cannot reach {url}: {exc}", threshold="2xx")
        status = reply.status_code
        if reply.ok:
            return Result(Verdict.PASS, f"{url} answered {status}", value=status, threshold="2xx")
        body = outbound.excerpt(reply.text)
        return Result(
            Verdict.FAIL,
            f"{url} answered {status}" + (f": {body}" if body else ""),
            value=status,
            threshold="2xx",
        )
