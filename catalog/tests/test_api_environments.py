"""Environments and external dependencies: readable by all, changed by platform admins."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.models import Environment, ExternalDependency, Instance
from controlplane.models import Event

pytestmark = pytest.mark.django_db


def test_environments_list_in_deploy_order(api_as: Any) -> None:
    response = api_as("viewer").get("/api/v1/environments")
    assert [e["slug"] for e in response.json()["results"]] == ["staging", "production"]


def test_an_admin_adds_an_environment(api_as: Any) -> None:
    response = api_as("admin").post(
        "/api/v1/environments", {"slug": "qa", "name": "QA", "order": 15}
    )
    assert response.status_code == 201
    assert Environment.objects.filter(slug="qa").exists()
    assert Event.objects.filter(action="environment.created").exists()


def test_a_team_owner_cannot_add_an_environment(api_as: Any) -> None:
    response = api_as("owner").post("/api/v1/environments", {"slug": "qa", "name": "QA"})
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "only platform admins may change this"


def test_an_environment_with_instances_cannot_be_deleted(api_as: Any, world: Any) -> None:
    # given
    Instance.objects.create(
        service=world.service, environment=world.staging, host="10.0.0.1", port=80
    )
    # when
    response = api_as("admin").delete("/api/v1/environments/staging")
    # then
    assert response.status_code == 409
    assert Environment.objects.filter(slug="staging").exists()
    assert not Event.objects.filter(action="environment.deleted").exists()


def test_an_admin_declares_an_external_dependency_services_then_use(
    api_as: Any, world: Any
) -> None:
    # when
    created = api_as("admin").post(
        "/api/v1/external-dependencies",
        {"slug": "stripe", "name": "Stripe", "status_page_url": "https://status.stripe.com/"},
    )
    linked = api_as("owner").patch(
        "/api/v1/services/checkout", {"external_dependencies": ["stripe"]}
    )
    # then
    assert created.status_code == 201
    assert linked.json()["external_dependencies"] == ["stripe"]
    assert list(ExternalDependency.objects.get(slug="stripe").dependents.all()) == [world.service]
    using = api_as("viewer").get("/api/v1/services?external=stripe")
    assert [s["slug"] for s in using.json()["results"]] == ["checkout"]
