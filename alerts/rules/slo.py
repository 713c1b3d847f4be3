"""SLO burn rate, multi-window multi-burn-rate as in Google's SRE workbook (chapter 5).

An availability SLO of 99.9 % leaves an error budget of 0.1 %. Burning at rate 1 spends
exactly the budget over the SLO period; at 14.4 it spends 2 % of a 30-day budget in one
hour. A window pair fires when both its long window (is it significant?) and its short
window (is it still happening?) burn at least at the pair's rate.

Availability is the share of health probes that did not fail, from health's per-minute
rollups (hourly ones for windows reaching back more than a day).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alerts.choices import RuleKind
from alerts.history import window_counts
from alerts.models import Incident, Rule
from alerts.rules.base import Kind, Subject

# (long window s, short window s, burn rate): the workbook's recommendation.
PAGE_WINDOWS = [[3600, 300, 14.4], [21600, 1800, 6.0]]
TICKET_WINDOWS = [[259200, 21600, 1.0]]


@dataclass(frozen=True)
class Window:
    long_seconds: int
    short_seconds: int
    factor: float

    def describe(self) -> str:
        return f"{_span(self.long_seconds)}/{_span(self.short_seconds)} at {self.factor:g}x"


def _span(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


def burn_rate(good: float, total: float, objective: float) -> float:
    """How fast the error budget burns: 1.0 spends it exactly over the SLO period."""
    if total <= 0:
        return 0.0
    return (1.0 - good / total) / (1.0 - objective)


def burning_window(
    windows: Sequence[Window],
    counts: Callable[[int], tuple[float, float]],
    objective: float,
) -> tuple[Window, float, float] | None:
    """The first window pair whose long and short windows both burn at least at its rate,
    with both rates; None when no pair does."""
    for window in windows:
        long_rate = burn_rate(*counts(window.long_seconds), objective)
        if long_rate < window.factor:
            continue
        short_rate = burn_rate(*counts(window.short_seconds), objective)
        if short_rate >= window.factor:
            return window, long_rate, short_rate
    return None


class SloBurn(Kind):
    """Availability of a service in an environment, from its health probes' rollups."""

    name = RuleKind.SLO_BURN
    params = {"objective": (0.999, float), "windows": (PAGE_WINDOWS, list)}

    def check(self, params: dict[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if not 0.5 <= params["objective"] < 1.0:
            errors["params.objective"] = ["must be at least 0.5 and below 1 (0.999 is 99.9 %)"]
        windows = params["windows"]
        valid = bool(windows) and all(
            isinstance(w, list)
            and len(w) == 3
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in w)
            and 60 <= w[1] < w[0] <= 30 * 86400
            and w[2] > 0
            for w in windows
        )
        if not valid:
            errors["params.windows"] = [
                "give [[long_seconds, short_seconds, burn_rate], ...] with "
                "60 <= short < long <= 30 days and a positive rate"
            ]
        return errors

    def windows(self, rule: Rule) -> list[Window]:
        return [Window(int(a), int(b), float(c)) for a, b, c in self.param(rule, "windows")]

    def sweep(self, rule: Rule, now: datetime) -> None:
        from alerts.incidents import clear_condition, dedup_key, raise_condition
        from catalog.models import Environment, Service

        services = Service.objects.filter(team_id=rule.team_id)
        if rule.service_id is not None:
            services = services.filter(pk=rule.service_id)
        environments = Environment.objects.all()
        if rule.environment_id is not None:
            environments = environments.filter(pk=rule.environment_id)
        if rule.production_only:
            environments = environments.filter(is_production=True)
        envs = list(environments)
        objective = self.param(rule, "objective")
        windows = self.windows(rule)
        # Most subjects are not burning: only those with an open incident need clearing.
        open_keys = set(
            Incident.objects.open().filter(rule=rule).values_list("dedup_key", flat=True)
        )
        for service in services:
            for env in envs:
                subject = Subject(
                    type="catalog.service",
                    id=str(service.pk),
                    label=f"{service.slug} in {env.slug}",
                    service_id=service.pk,
                    environment_id=env.pk,
                )
                # A window without probes burns nothing (burn_rate 0): nothing to judge.
                found = burning_window(windows, window_counts(service.pk, env.pk, now), objective)
                if found is None:
                    if dedup_key(rule, subject) in open_keys:
                        clear_condition(rule, subject, "error budget no longer burning fast")
                    continue
                window, long_rate, short_rate = found
                raise_condition(
                    rule,
                    subject,
                    title=f"{subject.label} is burning its {objective:.3%} SLO",
                    reason=f"burn rate {long_rate:.1f}x over {_span(window.long_seconds)} and "
                    f"{short_rate:.1f}x over {_span(window.short_seconds)} "
                    f"(threshold {window.factor:g}x)",
                )
