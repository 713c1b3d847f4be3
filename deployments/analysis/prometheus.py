"""A Prometheus query through its HTTP API, held to a condition such as `< 0.05`.

The Prometheus URL is set by whoever starts the rollout (a `deploy` token): the query goes
through the outbound guard (redirects followed at most `MAX_REDIRECTS` times, each checked
again), and an answer that is not Prometheus's JSON is kept only as a short excerpt."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable

import httpx

from controlplane import outbound
from deployments.analysis.base import AnalysisProvider, Context, Result
from deployments.choices import Verdict

MAX_REDIRECTS = 3  # a Prometheus behind a proxy that adds a trailing slash, or moves to https
MAX_ANSWER_BYTES = 4_000_000  # a query result over this is not a canary's metric
CONDITION_RE = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def render_query(query: str, ctx: Context) -> str:
    """Fill `{{service}}`, `{{environment}}`, `{{version}}` and `{{stable_version}}`."""
    rollout = ctx.rollout
    values = {
        "service": rollout.service.slug,
        "environment": rollout.environment.slug,
        "version": rollout.to_version,
        "stable_version": rollout.from_version,
    }
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values.get(m.group(1), m.group(0)), query)


def parse_condition(condition: str) -> tuple[str, float]:
    match = CONDITION_RE.match(condition)
    if not match:
        raise ValueError(f"condition {condition!r}: use an operator and a number, e.g. '< 0.05'")
    return match.group(1), float(match.group(2))


class PrometheusQuery(AnalysisProvider):
    """Every series the query returns must meet the condition; no series is no data."""

    def measure(self, ctx: Context) -> Result:
        metric = ctx.metric
        condition = str(metric["condition"])
        op, limit = parse_condition(condition)
        query = render_query(str(metric["query"]), ctx)
        url = str(metric["url"]).rstrip("/") + "/api/v1/query"
        try:
            reply = outbound.request(
                "GET",
                url,
                params={"query": query},
                timeout=float(metric["timeout"]),
                max_redirects=MAX_REDIRECTS,
                max_bytes=MAX_ANSWER_BYTES,
            )
        except outbound.Refused as exc:
            return Result(Verdict.FAIL, f"not querying {metric['url']}: {exc}", threshold=condition)
        except (httpx.HTTPError, OSError) as exc:
            return Result.no_data(
                f"cannot read Prometheus at {metric['url']}: {exc}", threshold=condition
            )
        try:
            body = reply.json()
        except ValueError:
            return Result.no_data(
                f"{metric['url']} answered HTTP {reply.status_code}, not Prometheus's JSON: "
                + outbound.excerpt(reply.text),
                threshold=condition,
            )
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            return Result.no_data(
                "Prometheus refused the query: "
                + (outbound.excerpt(str(error)) if error else str(reply.status_code)),
                threshold=condition,
                detail={"query": query},
            )
        data = body.get("data", {})
        samples: list[tuple[dict[str, str], str]]
        if data.get("resultType") == "scalar":
            samples = [({}, data["result"][1])]
        else:
            samples = [(s.get("metric", {}), s["value"][1]) for s in data.get("result", [])]
        values = [(labels, float(value)) for labels, value in samples]
        values = [(labels, v) for labels, v in values if not math.isnan(v)]
        detail = {"query": query, "series": [{"labels": lbl, "value": v} for lbl, v in values]}
        if not values:
            return Result.no_data(
                f"the query returned no data: {query}", threshold=condition, detail=detail
            )
        bad = [(labels, v) for labels, v in values if not OPERATORS[op](v, limit)]
        if bad:
            labels, value = bad[0]
            where = ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__")
            return Result(
                Verdict.FAIL,
                f"{value:g} is not {condition.strip()}" + (f" ({where})" if where else ""),
                value=value,
                threshold=condition,
                detail=detail,
            )
        return Result(
            Verdict.PASS,
            f"{values[0][1]:g} {condition.strip()}",
            value=values[0][1],
            threshold=condition,
            detail=detail,
        )
