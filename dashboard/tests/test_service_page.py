"""A service's page: health, instances, rollouts, circuits, dependencies, actions; and deploying."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import ExternalDependency, Instance, Service
from circuits.choices import AggregateState
from controlplane.events import publish
from dashboard.tests.conftest import circuit, incident, rollout
from deployments.choices import RolloutState, RouterKind
from deployments.models import Rollout, TrafficRoute, TrafficRouter
from health.choices import CheckStatus, ServiceStatus
from health.models import InstanceCheck, ServiceHealth

pytestmark = pytest.mark.django_db
MAX_QUERIES = 27  # +2: the debug windows section (windows, their targets); +3: its forms
# (the owner check, the delivery setting for owners, the instances to open a window on);
# +2: the charts' scale and incident markers


def page_as(user: Any, path: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def checkout(world: Any) -> Any:
    """checkout with links, two instances (one failing), a dependency each way, a rollout
    under way, a firing incident and a circuit each way."""
    service = world.service
    service.runbook_url = "https://wiki.example.com/runbooks/checkout"
    service.repository_url = "https://git.example.com/commerce/checkout"
    service.save()
    stripe = ExternalDependency.objects.create(
        slug="stripe", name="Stripe", status_page_url="https://status.stripe.com/"
    )
    service.external_dependencies.add(stripe)
    world.other_service.depends_on.add(service)
    for port, status in ((7101, CheckStatus.PASS), (7102, CheckStatus.FAIL)):
        instance = Instance.objects.create(
            service=service,
            environment=world.production,
            host="127.0.0.1",
            port=port,
            version="1.4.2",
        )
        InstanceCheck.objects.create(
            instance=instance, status=status, last_reason="HTTP 500" if status == "fail" else ""
        )
    ServiceHealth.objects.create(
        service=service,
        environment=world.production,
        status=ServiceStatus.DEGRADED,
        passing=1,
        failing=1,
        reason="1 of 2 instances failing",
    )
    rollout(world, service, to_version="1.5.0")
    incident(world, service, "checkout is degraded")
    circuit(world, service, world.other_service, AggregateState.CLOSED, "indexer-client")
    circuit(world, world.other_service, service, AggregateState.OPEN, "checkout-client")
    return service


def test_it_shows_what_on_call_needs_about_the_service(world: Any, checkout: Any) -> None:
    page = page_as(world.viewer, "/catalog/services/checkout/")
    # health and instances, in words
    assert f'id="service-env-{checkout.pk}-{world.production.pk}"' in page
    assert "1 of 2 instances failing" in page
    assert "127.0.0.1:7102" in page and "HTTP 500" in page
    assert "<code>1.4.2</code> \N{MULTIPLICATION SIGN}2" in page
    # charts' data source and the rollout under way (a deploy marker for it)
    assert "/api/v1/health/history?service=checkout&environment=production" in page
    assert '"version": "1.5.0"' in page
    assert "Progressing" in page and "1.5.0" in page
    # circuits both ways, dependencies both ways, the incident
    assert "indexer-client" in page and "checkout-client" in page
    assert "Stripe" in page and "(declared)" in page and "(circuit)" in page
    assert "indexer</a>" in page
    assert "checkout is degraded" in page
    # runbook and repository
    assert "https://wiki.example.com/runbooks/checkout" in page
    assert "https://git.example.com/commerce/checkout" in page


def test_the_charts_mark_deploys_scaling_and_incidents(world: Any, checkout: Any) -> None:
    import json
    import re

    from scaling.models import Decision, ScalingGroup

    group = ScalingGroup.objects.create(
        service=checkout, environment=world.production, driver="process",
        driver_config={"control_url": "http://127.0.0.1:7900"}, min_instances=1,
        max_instances=5, desired=3,
    )  # fmt: skip
    Decision.objects.create(group=group, current=2, desired=3)
    Decision.objects.create(group=group, current=3, desired=3, held_by="no data")  # no change
    other = ScalingGroup.objects.create(
        service=checkout, environment=world.staging, driver="process",
        driver_config={"control_url": "http://127.0.0.1:7900"}, min_instances=1,
        max_instances=5, desired=2,
    )  # fmt: skip
    Decision.objects.create(group=other, current=1, desired=2)  # another environment's
    page = page_as(world.viewer, "/catalog/services/checkout/?env=production")
    found = re.search(r'<script id="deploy-markers" type="application/json">(.*?)</script>', page)
    assert found is not None
    markers = json.loads(found.group(1))
    kinds = sorted(m["kind"] for m in markers)
    # the rollout under way, the one count change in production, the firing incident
    assert kinds == ["deploy", "incident", "scale"]
    scale = next(m for m in markers if m["kind"] == "scale")
    assert scale["label"] == "2\N{RIGHTWARDS ARROW}3" and scale["state"] == "up"
    fired = next(m for m in markers if m["kind"] == "incident")
    assert fired["label"].startswith("#") and fired["until"] is None
    assert "deploys, scaling and incidents marked" in page


def test_a_viewer_is_told_who_may_deploy(world: Any, checkout: Any) -> None:
    page = page_as(world.viewer, "/catalog/services/checkout/")
    assert "Deployers and owners of payments can start a rollout" in page
    assert "Start rollout" not in page


def test_a_deployer_is_told_why_there_is_nothing_to_deploy_with(world: Any, checkout: Any) -> None:
    page = page_as(world.deployer, "/catalog/services/checkout/")
    assert "No traffic router routes checkout yet" in page


def route(world: Any) -> TrafficRoute:
    router = TrafficRouter.objects.create(
        name="haproxy-demo", kind=RouterKind.HAPROXY, connection={"socket": "/nonexistent.sock"}
    )
    return TrafficRoute.objects.create(
        router=router, service=world.service, environment=world.production, backend="be_checkout"
    )


def test_a_deployer_starts_a_rollout_from_the_page(world: Any, checkout: Any) -> None:
    # given a router routes checkout in production, and no rollout is running there
    route(world)
    Rollout.objects.update(state=RolloutState.SUCCEEDED)
    client = Client()
    client.force_login(world.deployer)
    assert "Start rollout" in client.get("/catalog/services/checkout/").content.decode()
    # when the deployer submits the form
    response = client.post(
        "/catalog/services/checkout/deploy",
        {"environment": "production", "version": "1.6.0", "reason": "fixes the cart"},
    )
    # then a rollout of 1.6.0 is under way and the deployer lands on its page
    started = Rollout.objects.get(to_version="1.6.0")
    assert started.state == RolloutState.PENDING
    assert started.reason == "fixes the cart"
    assert started.actor_label == "deployer"
    assert response.status_code == 302
    assert response["Location"] == f"/deployments/rollouts/{started.pk}/"


def test_a_refused_rollout_says_why_on_the_page(world: Any, checkout: Any) -> None:
    # given a rollout is already under way in production
    route(world)
    client = Client()
    client.force_login(world.deployer)
    # when another is asked for
    response = client.post(
        "/catalog/services/checkout/deploy", {"environment": "production", "version": "1.7.0"},
        follow=True,
    )  # fmt: skip
    # then the page says which rollout is in the way
    assert "Not deployed: checkout already has an active rollout in production" in (
        response.content.decode()
    )
    assert not Rollout.objects.filter(to_version="1.7.0").exists()


def test_a_viewer_cannot_deploy(world: Any, checkout: Any) -> None:
    route(world)
    client = Client()
    client.force_login(world.viewer)
    response = client.post(
        "/catalog/services/checkout/deploy", {"environment": "production", "version": "1.6.0"}
    )
    assert response.status_code == 403
    assert "deployer role" in response.content.decode()


def test_a_missing_version_is_refused_naming_the_field(world: Any, checkout: Any) -> None:
    route(world)
    client = Client()
    client.force_login(world.deployer)
    response = client.post(
        "/catalog/services/checkout/deploy",
        {"environment": "production", "version": " "},
        follow=True,
    )
    assert "Not deployed: version: give the version to roll out." in response.content.decode()


def count_queries(user: Any, path: str) -> int:
    client = Client()
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


def test_its_queries_do_not_grow_with_the_fleet(world: Any, checkout: Any, fleet: Any) -> None:
    fleet(10)
    small = count_queries(world.deployer, "/catalog/services/checkout/")
    fleet(1000)
    large = count_queries(world.deployer, "/catalog/services/checkout/")
    assert small == large
    assert large <= MAX_QUERIES


@pytest.mark.django_db(transaction=True)
def test_a_circuit_opening_towards_it_is_pushed_to_its_page(world: Any, pushes: Any) -> None:
    # given the checkout page is open, and indexer guards its calls to checkout
    page = pushes("dashboard:service.checkout")
    caller_page = pushes("dashboard:service.indexer")
    guard = circuit(world, world.other_service, world.service, AggregateState.CLOSED, "co")
    # when that circuit opens
    with transaction.atomic():
        guard.state = AggregateState.OPEN
        guard.save()
        publish("circuit.opened", subject=guard, message="co opened")
    # then checkout's circuits section arrives, showing it open
    section = page.wait_for(f'id="service-circuits-{world.service.slug}"')
    assert f'id="towards-circuit-{guard.pk}"' in section
    assert "Open" in section
    # and on the caller's page (its circuit) too, where the event heads the timeline
    assert f'id="service-circuit-{guard.pk}"' in caller_page.wait_for("service-circuits-indexer")
    row = caller_page.wait_for("circuit.opened")
    assert 'hx-swap-oob="afterbegin:#service-events"' in row


@pytest.mark.django_db(transaction=True)
def test_a_dependency_going_down_is_pushed_to_the_pages_that_show_it(
    world: Any, pushes: Any
) -> None:
    # given indexer declares it calls checkout, and billing is only seen calling it through
    # a circuit; their pages show checkout's health in production
    world.other_service.depends_on.add(world.service)
    billing = Service.objects.create(slug="billing", name="Billing", team=world.team)
    circuit(world, billing, world.service, AggregateState.CLOSED, "checkout-client")
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.HEALTHY
    )
    page = page_as(world.viewer, "/catalog/services/indexer/?env=production")
    assert 'data-dep-health="checkout@production"' in page
    indexer_page, billing_page = (
        pushes("dashboard:service.indexer"),
        pushes("dashboard:service.billing"),
    )
    loner = Service.objects.create(slug="loner", name="Loner", team=world.team)
    unrelated = pushes(f"dashboard:service.{loner.slug}")
    # when checkout goes down
    with transaction.atomic():
        ServiceHealth.objects.filter(service=world.service).update(status=ServiceStatus.DOWN)
        publish(
            "health.service.changed",
            subject=world.service,
            service=world.service,
            environment=world.production,
            message="checkout in production: healthy -> down",
            payload={"from": "healthy", "to": "down"},
        )
    # then both callers' pages get its badge, swapped wherever it shows, saying down in words
    for pushed in (indexer_page, billing_page):
        badge = pushed.wait_for('data-dep-health="checkout@production"')
        assert 'outerHTML:[data-dep-health="checkout@production"]' in badge
        assert "sb-status-down" in badge and "down</span>" in badge
    # and a page that does not list checkout gets nothing about it
    with pytest.raises(AssertionError):
        unrelated.wait_for("checkout@production", timeout=0.5)
