"""POST /api/v1/circuits/reports: batched, idempotent, newest wins, aggregated like Turbine."""

from __future__ import annotations

from typing import Any

import pytest

from circuits.models import Circuit, CircuitInstanceState, CircuitTransition
from circuits.tests.conftest import batch, report
from controlplane.models import Event

URL = "/api/v1/circuits/reports"


def push(client: Any, body: dict[str, Any]) -> Any:
    return client.post(URL, body, format="json")


@pytest.mark.django_db
def test_it_stores_a_batch_and_combines_rates_by_call_volume(reporter: Any) -> None:
    # given three instances, one of them busy and failing
    body = batch(
        report(instance="10.0.0.1:8080", failure_rate=50.0, calls=300, rejected_calls=4),
        report(instance="10.0.0.2:8080", failure_rate=0.0, calls=100),
        report(instance="10.0.0.3:8080", failure_rate=None, calls=2),
    )
    # when they report in one batch
    response = push(reporter, body)
    # then all are accepted and the circuit weighs each rate by its calls
    assert response.status_code == 202, response.json()
    assert response.json()["accepted"] == 3
    circuit = Circuit.objects.get(name="payments-api")
    assert circuit.total_instances == 3
    assert circuit.failure_rate == pytest.approx(37.5)  # (50*300 + 0*100) / 400
    assert circuit.call_volume == 402
    assert circuit.rejected_calls == 4
    assert circuit.state == "closed"


@pytest.mark.django_db
def test_the_worst_fresh_state_is_the_circuits_state(reporter: Any) -> None:
    # given a circuit closed on two instances
    push(reporter, batch(report(instance="a:1"), report(instance="b:1")))
    # when one instance opens
    push(reporter, batch(report(instance="b:1", state="open", failure_rate=80.0, calls=20)))
    # then the circuit is open on one of two instances
    circuit = Circuit.objects.get()
    assert (circuit.state, circuit.open_instances, circuit.total_instances) == ("open", 1, 2)


@pytest.mark.django_db
def test_a_repeated_or_older_report_changes_nothing(reporter: Any) -> None:
    # given an instance that reported open a second ago
    sent = report(state="open", ago=1)
    push(reporter, batch(sent))
    # when the same report arrives again, and an older "closed" one arrives late
    again = push(reporter, batch(sent))
    late = push(reporter, batch(report(state="closed", ago=5)))
    # then both are ignored and the instance is still open
    assert again.json()["ignored"] == 1 and again.json()["accepted"] == 0
    assert late.json()["ignored"] == 1
    assert CircuitInstanceState.objects.get().state == "open"


@pytest.mark.django_db
def test_within_a_batch_the_newest_report_per_instance_wins(reporter: Any) -> None:
    response = push(reporter, batch(report(state="open", ago=2), report(state="half_open", ago=1)))
    assert response.json() == {
        "accepted": 1,
        "ignored": 1,
        "stale": 0,
        "circuits": 1,
        "warnings": [],
    }
    assert CircuitInstanceState.objects.get().state == "half_open"


@pytest.mark.django_db
def test_a_report_older_than_the_stale_time_is_dropped(reporter: Any, settings: Any) -> None:
    settings.SIGNALBOX_CIRCUITS_STALE_SECONDS = 30
    response = push(reporter, batch(report(ago=31)))
    assert response.status_code == 202
    assert response.json()["stale"] == 1
    assert not Circuit.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_bad_batch_naming_every_bad_field(reporter: Any) -> None:
    # given a batch with a bad state, a rate over 100 and a time without zone
    body = batch(
        report(),
        report(state="ajar"),
        {**report(failure_rate=120), "reported_at": "2024-01-01T00:00:00", "colour": "red"},
    )
    # when it is pushed
    response = push(reporter, body)
    # then nothing is stored and each problem is named
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {
        "reports.1.state",
        "reports.2.failure_rate",
        "reports.2.reported_at",
        "reports.2.colour",
    }
    assert not Circuit.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_report_dated_in_the_future(reporter: Any) -> None:
    response = push(reporter, batch(report(ago=-3600)))
    assert response.status_code == 400
    assert "clock" in response.json()["error"]["fields"]["reports.0.reported_at"][0]


@pytest.mark.django_db
def test_it_refuses_services_not_in_the_catalog(reporter: Any) -> None:
    response = push(reporter, batch(report(), service="nope"))
    assert response.status_code == 400
    assert "reports.0.service" in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_a_token_may_not_report_for_another_teams_service(world: Any, token_client: Any) -> None:
    # given a report token of the search team
    client, _ = token_client(world.other_team, ["report"])
    # when it reports for checkout (payments)
    response = push(client, batch(report()))
    # then it is refused, with the reason
    assert response.status_code == 403
    assert "payments" in response.json()["error"]["message"]
    assert not Circuit.objects.exists()


@pytest.mark.django_db
def test_a_service_bound_token_reports_only_for_its_service(world: Any, token_client: Any) -> None:
    from catalog.models import Service

    billing = Service.objects.create(slug="billing", name="Billing", team=world.team)
    client, _ = token_client(world.team, ["report"], service=world.service)
    assert push(client, batch(report())).status_code == 202
    assert push(client, batch(report(), service=billing.slug)).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_it_publishes_one_event_per_aggregate_change(world: Any, reporter: Any) -> None:
    # given a circuit closed on two instances
    push(reporter, batch(report(instance="a:1", ago=3), report(instance="b:1", ago=3)))
    # when both open, then one recovers, then the other
    push(
        reporter,
        batch(
            report(instance="a:1", state="open", ago=2), report(instance="b:1", state="open", ago=2)
        ),
    )
    push(reporter, batch(report(instance="a:1", ago=1)))
    push(reporter, batch(report(instance="b:1", ago=0)))
    # then the timeline says opened once and closed once
    actions = list(
        Event.objects.filter(action__startswith="circuit.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["circuit.opened", "circuit.closed"]
    opened = Event.objects.get(action="circuit.opened")
    assert (opened.service_id, opened.environment_id) == (world.service.pk, world.production.pk)
    assert opened.payload["to"] == "open" and opened.payload["open_instances"] == 2


@pytest.mark.django_db
def test_it_keeps_each_instance_transition_as_history(reporter: Any) -> None:
    push(reporter, batch(report(ago=3)))
    push(reporter, batch(report(state="open", ago=2)))
    push(reporter, batch(report(state="half_open", ago=1)))
    moves = list(
        CircuitTransition.objects.exclude(instance_key="")
        .order_by("at")
        .values_list("from_state", "to_state")
    )
    assert moves == [("closed", "open"), ("open", "half_open")]
    whole = list(
        CircuitTransition.objects.filter(instance_key="")
        .order_by("id")
        .values_list("from_state", "to_state")
    )
    assert whole == [("stale", "closed"), ("closed", "open"), ("open", "half_open")]


@pytest.mark.django_db
def test_it_links_a_report_to_the_catalog_instance_at_that_address(
    world: Any, reporter: Any
) -> None:
    from catalog.models import Instance

    instance = Instance.objects.create(
        service=world.service, environment=world.production, host="10.0.0.9", port=8080
    )
    push(reporter, batch(report(instance="10.0.0.9:8080"), report(instance="worker-7")))
    linked = dict(CircuitInstanceState.objects.values_list("instance_key", "instance_id"))
    assert linked == {"10.0.0.9:8080": instance.pk, "worker-7": None}


@pytest.mark.django_db
def test_the_target_comes_from_protects_or_else_from_the_name(world: Any, reporter: Any) -> None:
    from catalog.models import ExternalDependency

    ExternalDependency.objects.create(slug="stripe", name="Stripe")
    response = push(
        reporter,
        batch(
            report("indexer"),  # named after a service
            report("charge", protects="external:stripe"),
            report("mystery"),
            report("ghost", protects="service:nowhere"),
        ),
    )
    targets = {
        c.name: c.target_label
        for c in Circuit.objects.select_related("protects_service", "protects_external")
    }
    assert targets == {
        "indexer": "indexer",
        "charge": "external:stripe",
        "mystery": "",
        "ghost": "",
    }
    assert response.json()["warnings"] == [
        "protects 'service:nowhere' names nothing in the catalog; the circuit keeps its target"
    ]
