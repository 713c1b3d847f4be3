"""Analysis providers: evidence that the new version is good, each measurement with a verdict."""

from __future__ import annotations

from deployments.analysis.base import AnalysisProvider, Context, Result
from deployments.analysis.canary_health import CanaryHealth
from deployments.analysis.dependents import Dependents
from deployments.analysis.lb_stats import LoadBalancerStats
from deployments.analysis.prometheus import PrometheusQuery
from deployments.analysis.webhook import WebHook
from deployments.choices import Provider

PROVIDERS: dict[str, AnalysisProvider] = {
    Provider.CANARY_HEALTH: CanaryHealth(),
    Provider.LB_STATS: LoadBalancerStats(),
    Provider.PROMETHEUS: PrometheusQuery(),
    Provider.WEBHOOK: WebHook(),
    Provider.DEPENDENTS: Dependents(),
}

__all__ = ["PROVIDERS", "AnalysisProvider", "Context", "Result"]
