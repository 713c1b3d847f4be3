"""OpenAPI shapes of rollout steps and analysis metrics, built from the kinds the code knows.

Documentation only: requests are still judged by deployments.strategies, whose messages
the API answers; these shapes tell editors, generated clients and fuzzers the same rules.
A step is an object with one key naming its kind, so steps are a plain `oneOf`; a metric
names its provider in `provider`, so metrics are a `oneOf` with that discriminator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction, PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from deployments.analysis import callers
from deployments.analysis.canary_health import DEFAULT_ALLOW_WARN, DEFAULT_MAX_FAILING
from deployments.analysis.dependents import DEFAULT_ALLOW_DEGRADED
from deployments.analysis.lb_stats import DEFAULT_MAX_ERROR_RATE, DEFAULT_MIN_REQUESTS
from deployments.analysis.prometheus import CONDITION_RE
from deployments.choices import Provider, StepKind
from deployments.strategies import (
    DEFAULT_METRIC,
    METRIC_DEFAULTS,
    PROVIDER_PARAMS,
    REQUIRED_PARAMS,
)

Schema = dict[str, Any]
Build = Callable[[AutoSchema, Direction], Schema]
# What PolymorphicProxySerializer takes as its sub-serializers.
Shaped = serializers.Serializer[Any] | type[serializers.Serializer[Any]]


class Shape(serializers.Serializer[Any]):
    """A named JSON shape in the OpenAPI document; never used to read a request."""

    def __init__(self, component: str, build: Build) -> None:
        super().__init__()
        self.component = component
        self.build = build


class ShapeExtension(OpenApiSerializerExtension):
    """Puts each Shape in the document as its own component."""

    target_class = Shape

    def get_name(self, auto_schema: AutoSchema, direction: Direction) -> str | None:
        return str(self.target.component)

    def map_serializer(self, auto_schema: AutoSchema, direction: Direction) -> Schema:
        schema: Schema = self.target.build(auto_schema, direction)
        return schema


def _camel(value: str) -> str:
    return "".join(part.title() for part in value.split("_"))


# Metrics ---------------------------------------------------------------------------------

JSON_TYPES: dict[type | tuple[type, ...], Schema] = {
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    (int, float): {"type": "number"},
    str: {"type": "string"},
    dict: {"type": "object", "additionalProperties": {"type": "string"}},
}
# Zero is refused for the interval and the success count (strategies.validate_metrics).
POSITIVE = {"minimum": 0, "exclusiveMinimum": True}
COMMON_SETTINGS: dict[str, Schema] = {
    "interval": {**POSITIVE, "description": "Seconds between readings."},
    "success_count": {**POSITIVE, "description": "Passing readings in a row the metric needs."},
    "failure_limit": {
        "minimum": 0,
        "description": "Failing readings tolerated; one more rolls the rollout back.",
    },
    "timeout": {"minimum": 0, "description": "Seconds one reading may take."},
}


def _bounded(key: str, description: str, default: float | None = None) -> dict[str, Schema]:
    """A dependents setting with callers.BOUNDS as JSON Schema (the API refuses the same)."""
    low, high, exclusive = callers.BOUNDS[key]
    shape: Schema = {"description": description, "minimum": low}
    if exclusive:
        shape["exclusiveMinimum"] = True
    if high is not None:
        shape["maximum"] = high
    if default is not None:
        shape["default"] = default
    return {key: shape}


SETTINGS: dict[str, dict[str, Schema]] = {
    Provider.CANARY_HEALTH: {
        "max_failing": {
            "description": "New instances that may fail their checks.",
            "default": DEFAULT_MAX_FAILING,
        },
        "allow_warn": {
            "description": "Count `warn` as healthy.",
            "default": DEFAULT_ALLOW_WARN,
        },
    },
    Provider.LB_STATS: {
        "max_error_rate": {
            "description": "Highest 5xx rate of the new version, in percent.",
            "default": DEFAULT_MAX_ERROR_RATE,
        },
        "max_error_rate_increase": {"description": "Highest 5xx rate in points over stable's."},
        "max_latency_ms": {"description": "Highest mean response time of the new version."},
        "max_latency_ratio": {"description": "Highest response time as a multiple of stable's."},
        "min_requests": {
            "description": "Fewer responses of the new version in a reading is no data.",
            "default": DEFAULT_MIN_REQUESTS,
        },
        "window_seconds": {
            "description": "ALB only: seconds each reading looks back; default the interval, "
            "at least 60."
        },
    },
    Provider.PROMETHEUS: {
        "url": {"description": "The Prometheus server, e.g. http://prometheus:9090."},
        "query": {
            "description": "An instant query; may use {{service}}, {{environment}}, "
            "{{version}} and {{stable_version}}."
        },
        "condition": {
            "description": "What every series must meet: an operator and a number, e.g. `< 0.05`.",
            "pattern": CONDITION_RE.pattern,
        },
    },
    Provider.WEBHOOK: {
        "url": {"description": "Receives a POST of the rollout; a 2xx answer in time passes."},
        "headers": {"description": "Headers sent with the POST."},
    },
    Provider.DEPENDENTS: {
        "allow_degraded": {
            "description": "Count degraded dependents as healthy.",
            "default": DEFAULT_ALLOW_DEGRADED,
        },
        **_bounded(
            "max_failure_rate",
            "Highest percent of a caller's calls to the service that fail (held to callers "
            "that were within it before).",
            callers.DEFAULT_MAX_FAILURE_RATE,
        ),
        **_bounded(
            "max_failure_rate_increase",
            "Highest rise of a caller's failure rate over its own before, in points.",
            callers.DEFAULT_MAX_FAILURE_RATE_INCREASE,
        ),
        **_bounded(
            "max_slow_call_rate",
            "Highest percent of a caller's calls that are slow (by the caller's own slow-call "
            "limit); not checked unless set.",
        ),
        **_bounded(
            "max_slow_call_rate_increase",
            "Highest rise of a caller's slow-call rate over its own before, in points.",
            callers.DEFAULT_MAX_SLOW_CALL_RATE_INCREASE,
        ),
        **_bounded(
            "max_latency_increase_ms",
            "Highest rise of a caller's p99 over its own before, in ms; not checked unless set.",
        ),
        **_bounded(
            "max_latency_ratio",
            "Highest p99 as a multiple of the caller's own before; not checked unless set.",
        ),
        **_bounded(
            "min_calls",
            "A caller with fewer calls in its reports is not judged; no caller judged is no data.",
            callers.DEFAULT_MIN_CALLS,
        ),
    },
}


def metric_schema(provider: Provider) -> Schema:
    """One provider's metric: the shared settings, then the provider's own."""
    required = REQUIRED_PARAMS.get(provider, ())
    own = {
        key: {
            **JSON_TYPES[kind],
            **({"minLength": 1} if key in required and kind is str else {}),
            **SETTINGS.get(provider, {}).get(key, {}),
        }
        for key, kind in PROVIDER_PARAMS[provider].items()
    }
    return {
        "type": "object",
        "description": f"{provider.label}.",
        "properties": {
            "provider": {"type": "string", "enum": [provider.value]},
            "name": {
                "type": "string",
                "description": "Unique within an analysis; default: the provider.",
            },
            **{
                key: {"type": "number", **COMMON_SETTINGS[key], "default": default}
                for key, default in METRIC_DEFAULTS.items()
            },
            **own,
        },
        "required": ["provider", *required],
        "additionalProperties": False,
    }


def _metric_shape(provider: Provider) -> Shape:
    return Shape(f"{_camel(provider.value)}Metric", lambda auto, direction: metric_schema(provider))


# Plain strings as keys and names: the document is also rendered as YAML, which knows no enums.
METRIC_SHAPES: dict[str, Shaped] = {
    Provider(provider).value: _metric_shape(Provider(provider)) for provider in PROVIDER_PARAMS
}


def metrics_proxy(*, many: bool | None = None) -> PolymorphicProxySerializer:
    """`oneOf` the provider metrics, told apart by `provider`."""
    return PolymorphicProxySerializer(
        component_name="AnalysisMetric",
        serializers=METRIC_SHAPES,
        resource_type_field_name="provider",
        many=many,
    )


# Steps -----------------------------------------------------------------------------------


def _weight(auto: AutoSchema, direction: Direction) -> Schema:
    return {"type": "integer", "minimum": 0, "maximum": 100}


def _pause(auto: AutoSchema, direction: Direction) -> Schema:
    return {
        "type": "object",
        "properties": {"seconds": {"type": "integer", "minimum": 0, "nullable": True}},
        "additionalProperties": False,
    }


def _analysis(auto: AutoSchema, direction: Direction) -> Schema:
    metric = auto.resolve_serializer(metrics_proxy(), direction).ref
    return {
        "type": "object",
        "properties": {
            "metrics": {
                "type": "array",
                "items": metric,
                "description": "Default: the rollout's `analysis`, else one "
                f"{DEFAULT_METRIC['provider']} metric.",
            }
        },
        "additionalProperties": False,
    }


def _no_settings(auto: AutoSchema, direction: Direction) -> Schema:
    return {
        "type": "object",
        "nullable": True,
        "maxProperties": 0,
        "description": "Takes no settings: {}.",
    }


STEP_SETTINGS: dict[str, tuple[str, Build]] = {
    StepKind.SET_WEIGHT: ("Send this percent of traffic to the new version.", _weight),
    StepKind.PAUSE: ('Wait until promoted ({}), or for a time ({"seconds": N}).', _pause),
    StepKind.ANALYSIS: (
        "Measure the new version: a failing metric rolls back, no data pauses.",
        _analysis,
    ),
    StepKind.PREVIEW: (
        "Blue/green: ready the new version on the preview route, with no live traffic.",
        _no_settings,
    ),
    StepKind.DRAIN_STABLE: ("Drain the old version's instances.", _no_settings),
}


def _step_shape(kind: str, description: str, settings: Build) -> Shape:
    def build(auto: AutoSchema, direction: Direction) -> Schema:
        return {
            "type": "object",
            "description": description,
            "properties": {kind: settings(auto, direction)},
            "required": [kind],
            "additionalProperties": False,
        }

    return Shape(f"{_camel(kind)}Step", build)


STEP_SHAPES: list[Shaped] = [
    _step_shape(StepKind(kind).value, *about) for kind, about in STEP_SETTINGS.items()
]


def steps_proxy(*, many: bool | None = None) -> PolymorphicProxySerializer:
    """`oneOf` the step kinds; the one key of a step names its kind, so no discriminator."""
    return PolymorphicProxySerializer(
        component_name="Step", serializers=STEP_SHAPES, resource_type_field_name=None, many=many
    )


# Fields ----------------------------------------------------------------------------------


@extend_schema_field(steps_proxy(many=True))
class StepsField(serializers.JSONField):
    """A rollout's steps: any JSON here (strategies.validate_steps judges it), typed in OpenAPI."""


@extend_schema_field(metrics_proxy(many=True))
class MetricsField(serializers.JSONField):
    """Analysis metrics: any JSON here (strategies.validate_metrics judges it), typed in OpenAPI."""
