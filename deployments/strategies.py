"""Strategies as step lists: the documented defaults, validation of custom steps and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controlplane import outbound
from deployments.analysis.callers import BOUNDS as DEPENDENTS_BOUNDS
from deployments.analysis.callers import bound_errors
from deployments.choices import Provider, StepKind, Strategy

if TYPE_CHECKING:
    from deployments.models import DeploySettings

# Canary: shift a little traffic, analyse, shift more (docs/deployments.md).
DEFAULT_CANARY_WEIGHTS = (10, 25, 50)
DEFAULT_METRIC: dict[str, Any] = {
    "name": "canary-health",
    "provider": Provider.CANARY_HEALTH.value,
    "interval": 30,
    "success_count": 2,
    "failure_limit": 0,
}
METRIC_DEFAULTS = {"interval": 30, "success_count": 2, "failure_limit": 0, "timeout": 5}
MAX_STEPS = 50
# The steps a strategy may list; the reconciler adds finalize and rollback itself.
STRATEGY_STEPS = tuple(k.value for k in StepKind if k not in (StepKind.FINALIZE, StepKind.ROLLBACK))

PROVIDER_PARAMS: dict[str, dict[str, type | tuple[type, ...]]] = {
    Provider.CANARY_HEALTH: {"max_failing": int, "allow_warn": bool},
    Provider.LB_STATS: {
        "max_error_rate": (int, float),
        "max_error_rate_increase": (int, float),
        "max_latency_ms": (int, float),
        "max_latency_ratio": (int, float),
        "min_requests": int,
        "window_seconds": int,  # ALB (CloudWatch) only: seconds each reading looks back
    },
    Provider.PROMETHEUS: {"url": str, "query": str, "condition": str},
    Provider.WEBHOOK: {"url": str, "headers": dict},
    Provider.DEPENDENTS: {
        "allow_degraded": bool,
        **{key: (int, float) for key in DEPENDENTS_BOUNDS if key != "min_calls"},
        "min_calls": int,
    },
}
REQUIRED_PARAMS = {
    Provider.PROMETHEUS: ("url", "query", "condition"),
    Provider.WEBHOOK: ("url",),
}


def default_steps(strategy: str, rollback_window: int) -> list[dict[str, Any]]:
    """The steps a rollout gets when neither it nor its service names any."""
    if strategy == Strategy.BLUE_GREEN:
        return [
            {StepKind.PREVIEW.value: {}},
            {StepKind.ANALYSIS.value: {}},
            {StepKind.SET_WEIGHT.value: 100},
            {StepKind.PAUSE.value: {"seconds": rollback_window}},
            {StepKind.DRAIN_STABLE.value: {}},
        ]
    steps: list[dict[str, Any]] = []
    for weight in DEFAULT_CANARY_WEIGHTS:
        steps += [{StepKind.SET_WEIGHT.value: weight}, {StepKind.ANALYSIS.value: {}}]
    return [*steps, {StepKind.SET_WEIGHT.value: 100}]


def steps_for(strategy: str, defaults: DeploySettings) -> list[dict[str, Any]]:
    """A rollout's steps when it names none: the service's own steps if they are for this
    strategy (its default one), else the strategy's default steps. A service whose custom
    steps are a canary's still gets a real blue/green when one is asked for."""
    if defaults.steps and strategy == defaults.strategy:
        return list(defaults.steps)
    return default_steps(strategy, defaults.rollback_window_seconds)


def step_kind(step: dict[str, Any]) -> str:
    return next(iter(step))


def describe_step(step: dict[str, Any] | None) -> str:
    if not step:
        return ""
    kind, spec = next(iter(step.items()))
    if kind == StepKind.SET_WEIGHT:
        return f"set weight {spec}%"
    if kind == StepKind.PAUSE:
        seconds = spec.get("seconds")
        return f"pause {seconds}s" if seconds else "pause until promoted"
    if kind == StepKind.ANALYSIS:
        names = [m.get("name") or m.get("provider") for m in spec.get("metrics", [])]
        return "analysis" + (f" ({', '.join(names)})" if names else "")
    return StepKind(kind).label.lower()


def validate_steps(steps: Any) -> list[str]:
    """Reasons the steps are unusable, each prefixed with the step's position; [] when fine."""
    if not isinstance(steps, list) or not steps:
        return ['give a non-empty list of steps, e.g. [{"set_weight": 10}, {"analysis": {}}]']
    if len(steps) > MAX_STEPS:
        return [f"at most {MAX_STEPS} steps"]
    errors: list[str] = []
    for index, step in enumerate(steps):
        where = f"steps.{index}"
        if not isinstance(step, dict) or len(step) != 1:
            errors.append(f"{where}: each step is an object with exactly one key")
            continue
        kind, spec = next(iter(step.items()))
        if kind not in STRATEGY_STEPS:
            errors.append(
                f"{where}: unknown step {kind!r}; use one of {', '.join(sorted(STRATEGY_STEPS))}"
            )
        elif kind == StepKind.SET_WEIGHT:
            if not isinstance(spec, int) or isinstance(spec, bool) or not 0 <= spec <= 100:
                errors.append(f"{where}.set_weight: a whole percentage from 0 to 100")
        elif kind == StepKind.PAUSE:
            seconds = spec.get("seconds") if isinstance(spec, dict) else "bad"
            if (
                not isinstance(spec, dict)
                or set(spec) - {"seconds"}
                or (
                    seconds is not None
                    and (not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0)
                )
            ):
                errors.append(
                    f'{where}.pause: {{}} (until promoted) or {{"seconds": N}} with N >= 0'
                )
        elif kind == StepKind.ANALYSIS:
            if not isinstance(spec, dict) or set(spec) - {"metrics"}:
                errors.append(f'{where}.analysis: {{}} or {{"metrics": [...]}}')
            else:
                errors += validate_metrics(spec.get("metrics", []), f"{where}.analysis.metrics")
        elif spec not in ({}, None):
            errors.append(f"{where}.{kind}: takes no settings; use {{}}")
    return errors


def validate_metrics(metrics: Any, where: str = "analysis") -> list[str]:
    if not isinstance(metrics, list):
        return [f"{where}: a list of metrics"]
    errors: list[str] = []
    names: set[str] = set()
    for index, metric in enumerate(metrics):
        at = f"{where}.{index}"
        if not isinstance(metric, dict):
            errors.append(f"{at}: an object with at least a provider")
            continue
        provider = metric.get("provider")
        if provider not in Provider.values:
            errors.append(f"{at}.provider: one of {', '.join(Provider.values)}")
            continue
        name = str(metric.get("name") or provider)
        if name in names:
            errors.append(f"{at}.name: {name!r} is used twice; give each metric a name")
        names.add(name)
        params = PROVIDER_PARAMS[Provider(provider)]
        for key, value in metric.items():
            if key in ("name", "provider"):
                continue
            if key in METRIC_DEFAULTS:
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                    errors.append(f"{at}.{key}: a number >= 0")
            elif key not in params:
                known = sorted({*params, *METRIC_DEFAULTS, "name", "provider"})
                errors.append(f"{at}.{key}: unknown setting; use {', '.join(known)}")
            elif not isinstance(value, params[key]) or isinstance(value, bool) != (
                params[key] is bool
            ):
                errors.append(f"{at}.{key}: wrong type")
        if provider == Provider.DEPENDENTS:
            errors += bound_errors(metric, at)
        for key in REQUIRED_PARAMS.get(Provider(provider), ()):
            if not metric.get(key):
                errors.append(f"{at}.{key}: required for the {provider} provider")
        url = metric.get("url")
        if isinstance(url, str) and url:
            # Known now, so refused now; a name that rebinds later fails its measurement.
            reason = outbound.refusal(url)
            if reason:
                errors.append(f"{at}.url: {reason}")
        if metric.get("interval", 1) == 0:
            errors.append(f"{at}.interval: at least 1 second")
        if metric.get("success_count", 1) == 0:
            errors.append(f"{at}.success_count: at least 1")
    return errors


def metric_settings(metric: dict[str, Any]) -> dict[str, Any]:
    """A metric with its defaults filled in and its name set."""
    return {**METRIC_DEFAULTS, **metric, "name": str(metric.get("name") or metric["provider"])}
