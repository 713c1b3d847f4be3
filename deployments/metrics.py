"""Deployments' part of /metrics: rollouts by state and how late their next step is.
Registered in DeploymentsConfig.ready; docs/operations.md ("Metrics") lists the label sets."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client import Metric

from controlplane import metrics
from deployments.choices import ACTIVE_STATES, RolloutState
from deployments.models import Rollout


def rollouts() -> Iterator[Metric]:
    """Two queries: rollouts per environment and state; the most overdue active rollout."""
    now = timezone.now()
    by_state = metrics.gauge(
        "signalbox_rollouts",
        "Rollouts in each state, per environment. Active states (pending, progressing, paused,"
        " rolling_back) come and go; finished ones only grow while their rows are kept.",
        ["environment", "state"],
    )
    counts = (
        Rollout.objects.values_list("environment__slug", "state").annotate(n=Count("id")).order_by()
    )
    seen = {(environment, state): n for environment, state, n in counts}
    for environment in sorted({environment for environment, _ in seen}):
        for state in RolloutState.values:
            by_state.add_metric([environment, state], seen.get((environment, state), 0))
    yield by_state
    lag = Rollout.objects.filter(state__in=ACTIVE_STATES).aggregate(
        overdue=Min("next_action_at", filter=Q(next_action_at__lte=now)),
        step_started=Min("step_runs__started_at", filter=Q(step_runs__finished_at=None)),
    )
    step_lag = metrics.gauge(
        "signalbox_rollout_step_lag_seconds",
        "How long the most overdue active rollout's next step has been due and not run"
        " (0 when none is late): the reconciler is behind or stuck.",
    )
    overdue = lag["overdue"]
    step_lag.add_metric([], (now - overdue).total_seconds() if overdue else 0.0)
    yield step_lag
    oldest = metrics.gauge(
        "signalbox_rollout_step_age_seconds",
        "How long the longest-running current step of an active rollout has been running"
        " (0 when no rollout is active); a pause waiting for promotion counts too.",
    )
    started = lag["step_started"]
    oldest.add_metric([], (now - started).total_seconds() if started else 0.0)
    yield oldest


def register() -> None:
    metrics.register("deployments", rollouts)
