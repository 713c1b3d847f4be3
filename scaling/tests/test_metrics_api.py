"""POST /api/v1/metrics: instances report values about themselves, in batches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from catalog.models import Instance
from scaling.models import InstanceMetric, MetricMinute

pytestmark = pytest.mark.django_db
URL = "/api/v1/metrics"


@pytest.fixture
def instance(world: Any) -> Instance:
    return Instance.objects.create(
        service=world.service, environment=world.production, host="10.0.0.7", port=8080
    )


def test_a_report_token_sends_a_batch_by_id_and_by_address(
    world: Any, instance: Instance, token_client: Any
) -> None:
    client, _ = token_client(world.team, ["report"])
    at = timezone.now() - timedelta(seconds=5)
    answer = client.post(
        URL,
        {
            "metrics": [
                {
                    "instance": instance.pk,
                    "name": "cpu_percent",
                    "value": 71.5,
                    "at": at.isoformat(),
                },
                {
                    "service": "checkout",
                    "environment": "production",
                    "host": "10.0.0.7",
                    "port": 8080,
                    "name": "memory_mb",
                    "value": 512,
                },
            ]
        },
        format="json",
    )
    assert answer.status_code == 202, answer.json()
    assert answer.json() == {"accepted": 2}
    latest = dict(InstanceMetric.objects.values_list("name", "value"))
    assert latest == {"cpu_percent": 71.5, "memory_mb": 512.0}
    assert MetricMinute.objects.get(name="cpu_percent").average == 71.5


def test_an_older_value_never_replaces_a_newer_one(
    world: Any, instance: Instance, token_client: Any
) -> None:
    client, _ = token_client(world.team, ["report"])
    now = timezone.now()
    for value, at in ((10.0, now), (99.0, now - timedelta(seconds=30))):
        client.post(
            URL,
            {
                "metrics": [
                    {
                        "instance": instance.pk,
                        "name": "in_flight",
                        "value": value,
                        "at": at.isoformat(),
                    }
                ]
            },
            format="json",
        )
    assert InstanceMetric.objects.get(name="in_flight").value == 10.0


def test_a_bad_value_refuses_the_whole_batch_naming_it(
    world: Any, instance: Instance, token_client: Any
) -> None:
    client, _ = token_client(world.team, ["report"])
    answer = client.post(
        URL,
        {
            "metrics": [
                {"instance": instance.pk, "name": "cpu_percent", "value": 50},
                {
                    "service": "checkout",
                    "environment": "production",
                    "host": "10.9.9.9",
                    "port": 1,
                    "name": "cpu_percent",
                    "value": 50,
                },
                {"instance": instance.pk, "name": "Bad Name", "value": 1},
            ]
        },
        format="json",
    )
    assert answer.status_code == 400
    assert "metrics.2.name" in answer.json()["error"]["fields"]
    assert not InstanceMetric.objects.exists()
    unknown = client.post(
        URL,
        {
            "metrics": [
                {
                    "service": "checkout",
                    "environment": "production",
                    "host": "10.9.9.9",
                    "port": 1,
                    "name": "cpu_percent",
                    "value": 50,
                }
            ]
        },
        format="json",
    )
    assert unknown.status_code == 400
    assert "no such instance" in unknown.json()["error"]["fields"]["metrics.0"][0]


def test_another_teams_token_cannot_report_for_this_instance(
    world: Any, instance: Instance, token_client: Any
) -> None:
    client, _ = token_client(world.other_team, ["report"])
    answer = client.post(
        URL,
        {"metrics": [{"instance": instance.pk, "name": "cpu_percent", "value": 1}]},
        format="json",
    )
    assert answer.status_code == 403
    assert not InstanceMetric.objects.exists()
