"""POST/PATCH /api/v1/scaling/groups: a group, its metrics and HPA behaviour, validated."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.models import Event
from scaling.models import ScalingGroup
from scaling.tests.conftest import group_body

pytestmark = pytest.mark.django_db
GROUPS = "/api/v1/scaling/groups"


def test_an_owner_creates_a_group_with_hpa_defaults(api_as: Any, routed: Any) -> None:
    # when an owner creates a group with only its bounds and a CPU target
    answer = api_as("owner").post(GROUPS, group_body(), format="json")
    # then it starts at min, with HPA's behaviour, and the change is one audited event
    assert answer.status_code == 201, answer.json()
    data = answer.json()
    assert (data["desired"], data["enabled"]) == (2, True)
    assert data["up_policies"] == [
        {"type": "percent", "value": 100, "period_seconds": 15},
        {"type": "instances", "value": 4, "period_seconds": 15},
    ]
    assert data["down_policies"] == [{"type": "percent", "value": 100, "period_seconds": 15}]
    assert (data["down_stabilization_seconds"], data["up_stabilization_seconds"]) == (300, 0)
    assert (data["tolerance"], data["sync_seconds"], data["readiness_delay_seconds"]) == (
        0.1,
        15,
        30,
    )
    assert data["metrics"] == [
        {"source": "cpu", "name": "", "target": 60.0, "steps": [], "window_seconds": 60}
    ]
    assert Event.objects.filter(action="scaling.group_created").count() == 1


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"min_instances": 9}, "min_instances", "must not be above max_instances (8)"),
        ({"metrics": [{"source": "cpu", "target": 0}]}, "metrics.0.target", "above 0"),
        ({"metrics": [{"source": "vibes", "target": 1}]}, "metrics.0.source", "valid choice"),
        ({"metrics": [{"source": "custom", "target": 5}]}, "metrics.0.name", "names the metric"),
        ({"metrics": [{"source": "cpu"}]}, "metrics.0.target", "or steps"),
        (
            {"metrics": [{"source": "cpu", "steps": [{"lower": 9, "upper": 3, "change": 1}]}]},
            "metrics.0.steps.0.upper",
            "above lower",
        ),
        ({"up_policies": []}, "up_policies", "1 to 10 policies"),
        (
            {"down_policies": [{"type": "pods", "value": 1, "period_seconds": 15}]},
            "down_policies.0.type",
            "one of percent, instances",
        ),
        ({"driver_config": {}}, "driver_config.control_url", "is required"),
        ({"lifecycle_timeout_seconds": 10}, "lifecycle_timeout_seconds", "30"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_bad_input_names_the_field_and_nothing_is_saved(
    api_as: Any, routed: Any, overrides: dict[str, Any], field: str, words: str
) -> None:
    answer = api_as("owner").post(GROUPS, group_body(**overrides), format="json")
    assert answer.status_code == 400
    fields = answer.json()["error"]["fields"]
    assert field in fields, fields
    assert any(words in reason for reason in fields[field]), fields
    assert not ScalingGroup.objects.exists()


def test_a_service_without_a_router_cannot_be_scaled(api_as: Any, world: Any) -> None:
    answer = api_as("owner").post(GROUPS, group_body(), format="json")
    assert answer.status_code == 400
    assert "no traffic router" in answer.json()["error"]["fields"]["service"][0]


def test_a_second_group_for_one_service_and_environment_is_a_conflict(
    api_as: Any, routed: Any
) -> None:
    assert api_as("owner").post(GROUPS, group_body(), format="json").status_code == 201
    again = api_as("owner").post(GROUPS, group_body(), format="json")
    assert again.status_code == 409
    assert "PATCH it instead" in again.json()["error"]["message"]


def test_changing_metrics_replaces_them_and_keeps_credentials_secret(
    api_as: Any, routed: Any
) -> None:
    created = (
        api_as("owner")
        .post(
            GROUPS,
            group_body(
                driver="aws_asg",
                driver_config={
                    "region": "eu-west-1",
                    "auto_scaling_group_name": "web",
                    "port": 8080,
                },
                credentials="AKIAEXAMPLE:secret-value-123",
            ),
            format="json",
        )
        .json()
    )
    assert "secret-value-123" not in str(created)
    assert created["credentials_masked"].endswith("-123")
    changed = api_as("owner").patch(
        f"{GROUPS}/{created['id']}",
        {"metrics": [{"source": "celery_backlog", "target": 10}], "max_instances": 12},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    assert [m["source"] for m in changed.json()["metrics"]] == ["celery_backlog"]
    group = ScalingGroup.objects.get()
    assert group.credentials == "AKIAEXAMPLE:secret-value-123"  # left out: kept
    event = Event.objects.get(action="scaling.group_updated")
    assert event.payload["changes"]["max_instances"] == [8, 12]


def test_a_viewer_cannot_create_a_group(api_as: Any, routed: Any) -> None:
    assert api_as("viewer").post(GROUPS, group_body(), format="json").status_code == 403


def test_a_group_without_credentials_can_be_changed(api_as: Any, routed: Any) -> None:
    # given a process group (no credentials stored)
    created = api_as("owner").post(GROUPS, group_body(), format="json").json()
    # when its max changes
    answer = api_as("owner").patch(f"{GROUPS}/{created['id']}", {"max_instances": 9})
    # then it is saved (a blank secret stays blank, not NULL)
    assert answer.status_code == 200, answer.json()
    assert ScalingGroup.objects.get().max_instances == 9
