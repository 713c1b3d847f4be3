"""OpenAPI types rollout steps and analysis metrics: one shape for each kind the code knows."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from deployments.choices import Provider, Strategy
from deployments.strategies import (
    DEFAULT_METRIC,
    PROVIDER_PARAMS,
    REQUIRED_PARAMS,
    STRATEGY_STEPS,
    default_steps,
    metric_settings,
    validate_metrics,
    validate_steps,
)

pytestmark = pytest.mark.django_db

REF = "#/components/schemas/"
# Where steps and metrics appear, in requests and in answers.
STEPS_AT = [("RolloutCreateRequest", "steps"), ("Rollout", "steps"), ("RolloutDetail", "steps")]
METRICS_AT = [
    ("RolloutCreateRequest", "analysis"),
    ("RolloutDetail", "analysis"),
    ("AnalysisRun", "metrics"),
]
SAMPLE_BY_TYPE = {
    str: "http://metrics.internal:9090",
    int: 1,
    (int, float): 0.5,
    bool: True,
    dict: {},
}
SAMPLE_BY_NAME = {"query": "up", "condition": "< 0.05"}


@pytest.fixture(scope="module")
def schema(django_db_blocker: Any) -> dict[str, Any]:
    # Generated once for the module: building it walks every view of every app.
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return dict(response.json())


def component(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith(REF), ref
    return dict(schema["components"]["schemas"][ref.removeprefix(REF)])


def items_of(schema: dict[str, Any], name: str, field: str) -> dict[str, Any]:
    prop = component(schema, REF + name)["properties"][field]
    assert prop["type"] == "array"
    return component(schema, prop["items"]["$ref"])


def validator(schema: dict[str, Any], name: str) -> Any:
    # A root holding the components, so every $ref inside resolves.
    return OAS30Validator({"$ref": REF + name, "components": schema["components"]})


def test_it_is_valid_openapi_3(schema: dict[str, Any]) -> None:
    validate(schema)


@pytest.mark.parametrize(("name", "field"), STEPS_AT)
def test_steps_are_one_of_every_step_kind(schema: dict[str, Any], name: str, field: str) -> None:
    steps = items_of(schema, name, field)
    # A step's one key names its kind: no discriminator property to point at.
    assert "discriminator" not in steps
    kinds = []
    for option in steps["oneOf"]:
        shape = component(schema, option["$ref"])
        assert shape["additionalProperties"] is False
        assert list(shape["properties"]) == shape["required"]
        kinds += shape["required"]
    assert sorted(kinds) == sorted(STRATEGY_STEPS)


@pytest.mark.parametrize(("name", "field"), METRICS_AT)
def test_metrics_are_one_of_every_provider(schema: dict[str, Any], name: str, field: str) -> None:
    metrics = items_of(schema, name, field)
    assert metrics["discriminator"]["propertyName"] == "provider"
    mapping = metrics["discriminator"]["mapping"]
    assert sorted(mapping) == sorted(Provider.values)
    assert sorted(mapping.values()) == sorted(option["$ref"] for option in metrics["oneOf"])
    for provider, ref in mapping.items():
        shape = component(schema, ref)
        enum = component(schema, shape["properties"]["provider"]["$ref"])["enum"]
        assert enum == [provider]
        assert set(PROVIDER_PARAMS[Provider(provider)]) <= set(shape["properties"])
        assert set(shape["required"]) == {"provider", *REQUIRED_PARAMS.get(Provider(provider), ())}


def every_provider_metric() -> list[dict[str, Any]]:
    return [
        {
            "provider": provider,
            "name": f"check-{provider}",
            "interval": 0.5,
            **{
                key: SAMPLE_BY_NAME.get(key, SAMPLE_BY_TYPE[kind])
                for key, kind in PROVIDER_PARAMS[provider].items()
            },
        }
        for provider in PROVIDER_PARAMS
    ]


def test_what_the_api_accepts_matches_the_schema(schema: dict[str, Any]) -> None:
    steps = validator(schema, "StepRequest")
    # Answers show metrics as stored: defaults filled in.
    stored = validator(schema, "AnalysisMetric")
    plans = [default_steps(strategy, 600) for strategy in Strategy.values] + [
        [{"pause": {}}, {"analysis": {"metrics": every_provider_metric()}}, {"set_weight": 100}]
    ]
    for plan in plans:
        assert validate_steps(plan) == []
        for step in plan:
            steps.validate(step)
    assert validate_metrics(every_provider_metric()) == []
    for metric in [DEFAULT_METRIC, *every_provider_metric()]:
        stored.validate(metric_settings(metric))


@pytest.mark.parametrize(
    "step",
    [
        {"set_weight": 10, "pause": {}},
        {"set_weight": 101},
        {"pause": {"seconds": -1}},
        {"pause": {"minutes": 5}},
        {"preview": {"backend": "x"}},
        {"finalize": {}},
        {"analysis": {"metrics": [{"provider": "prometheus", "url": "http://p:9090"}]}},
        {"analysis": {"metrics": [{"provider": "canary_health", "max_failing": "two"}]}},
        {"analysis": {"metrics": [{"provider": "webhook", "url": "http://h", "retries": 3}]}},
    ],
)
def test_what_the_api_refuses_the_schema_refuses(schema: dict[str, Any], step: Any) -> None:
    assert validate_steps([step]) != []
    assert not validator(schema, "StepRequest").is_valid(step)
