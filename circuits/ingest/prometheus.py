"""Circuit states from Prometheus text exposition with resilience4j's metric names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from circuits.choices import CircuitState
from circuits.ingest.reports import Report

PREFIX = "resilience4j_circuitbreaker_"
_STATES = frozenset(CircuitState.values)


@dataclass
class Breaker:
    """What one page says about one named breaker."""

    name: str
    state: str | None = None
    failure_rate: float | None = None
    slow_call_rate: float | None = None
    buffered: dict[str, float] = field(default_factory=dict)  # kind -> calls in the window
    totals: dict[str, float] = field(default_factory=dict)  # kind -> cumulative counter


def parse(text: str) -> dict[str, Breaker]:
    """Every breaker on the page by name; series of other names are ignored."""
    breakers: dict[str, Breaker] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(PREFIX):
            continue
        for sample in family.samples:
            name = sample.labels.get("name")
            if not name:
                continue
            breaker = breakers.setdefault(name, Breaker(name))
            metric = sample.name[len(PREFIX) :]
            kind = sample.labels.get("kind", "")
            if metric == "state" and sample.value == 1 and sample.labels.get("state") in _STATES:
                breaker.state = sample.labels["state"]
            elif metric == "failure_rate":
                breaker.failure_rate = _rate(sample.value)
            elif metric == "slow_call_rate":
                breaker.slow_call_rate = _rate(sample.value)
            elif metric == "buffered_calls":
                breaker.buffered[kind] = sample.value
            elif metric in ("calls_seconds_count", "calls_total", "calls"):
                breaker.totals[kind] = breaker.totals.get(kind, 0) + sample.value
            elif metric in ("not_permitted_calls_total", "not_permitted_calls"):
                breaker.totals["not_permitted"] = sample.value
    return breakers


def _rate(value: float) -> float | None:
    # resilience4j exposes -1 while the window holds fewer calls than its minimum.
    return None if value < 0 else min(value, 100.0)


def to_reports(
    breakers: dict[str, Breaker],
    *,
    previous: dict[str, dict[str, float]],
    service: str,
    environment: str,
    instance_key: str,
    at: datetime,
) -> tuple[list[Report], dict[str, dict[str, float]]]:
    """Reports for the breakers that state a state, and the counters to remember for next time.

    Call volume is the growth of the cumulative counters since the previous scrape; on the
    first scrape (or after a restart reset them) it is the breaker's buffered window.
    """
    reports = []
    counters: dict[str, dict[str, float]] = {}
    for name, breaker in sorted(breakers.items()):
        if breaker.state is None:
            continue
        counters[name] = dict(breaker.totals)
        before = previous.get(name)
        delta = _growth(before, breaker.totals)
        if delta is None:
            calls = int(
                sum(v for k, v in breaker.buffered.items() if k in ("successful", "failed"))
            )
            failed = int(breaker.buffered.get("failed", 0))
            rejected = 0
        else:
            calls = int(delta.get("successful", 0) + delta.get("failed", 0))
            failed = int(delta.get("failed", 0))
            rejected = int(delta.get("not_permitted", 0))
        reports.append(
            Report(
                service=service,
                environment=environment,
                circuit=name,
                instance_key=instance_key,
                state=breaker.state,
                reported_at=at,
                failure_rate=breaker.failure_rate,
                slow_call_rate=breaker.slow_call_rate,
                calls=calls,
                failed_calls=failed,
                rejected_calls=rejected,
            )
        )
    return reports, counters


def _growth(before: dict[str, float] | None, now: dict[str, float]) -> dict[str, float] | None:
    if not before or not now:
        return None
    delta = {k: v - before.get(k, 0) for k, v in now.items()}
    if any(v < 0 for v in delta.values()):
        return None  # the process restarted and its counters began again
    return delta
