"""Scraping: resilience4j Prometheus pages and Hystrix streams, from real servers, on a schedule."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from catalog.choices import Lifecycle
from catalog.models import Instance
from circuits.choices import ScrapeKind, TargetOrigin
from circuits.ingest import scrape as scraping
from circuits.models import Circuit, CircuitInstanceState, ScrapeTarget
from circuits.tests.servers import FakeInstance, hystrix_command, resilience4j_page, serving


@pytest.fixture
def fake() -> Iterator[FakeInstance]:
    with serving(FakeInstance()) as running:
        yield running


def target(world: Any, fake: FakeInstance, kind: str, path: str) -> ScrapeTarget:
    return ScrapeTarget.objects.create(
        kind=kind,
        url=fake.url(path),
        service=world.service,
        environment=world.production,
        instance_key=fake.address,
    )


@pytest.mark.django_db
def test_it_reads_resilience4j_states_from_a_prometheus_page(
    world: Any, fake: FakeInstance
) -> None:
    # given an instance whose breaker towards indexer is open
    fake.metrics = resilience4j_page("indexer", "open", failure_rate=62.5, buffered=(3, 5))
    t = target(world, fake, ScrapeKind.PROMETHEUS, "/metrics")
    # when it is scraped
    result = scraping.scrape([t.pk])
    # then the circuit is open, towards indexer, with the window's calls
    assert result.accepted == 1
    circuit = Circuit.objects.get()
    assert (circuit.name, circuit.target_label, circuit.state) == ("indexer", "indexer", "open")
    state = CircuitInstanceState.objects.get()
    assert (
        state.instance_key,
        state.failure_rate,
        state.calls,
        state.failed_calls,
        state.source,
    ) == (fake.address, 62.5, 8, 5, "prometheus")


@pytest.mark.django_db
def test_call_volume_is_the_growth_of_the_counters_between_scrapes(
    world: Any, fake: FakeInstance
) -> None:
    t = target(world, fake, ScrapeKind.PROMETHEUS, "/metrics")
    fake.metrics = resilience4j_page("indexer", "closed", ok=100, failed=10, not_permitted=0)
    scraping.scrape([t.pk])
    fake.metrics = resilience4j_page(
        "indexer", "open", failure_rate=70.0, ok=130, failed=80, not_permitted=9
    )
    scraping.scrape([t.pk])
    state = CircuitInstanceState.objects.get()
    assert (state.state, state.calls, state.failed_calls, state.rejected_calls) == (
        "open",
        100,
        70,
        9,
    )


@pytest.mark.django_db
def test_it_reads_one_round_of_a_hystrix_stream(world: Any, fake: FakeInstance) -> None:
    # given a stream with two commands, one forced open by Hystrix properties
    fake.commands = [
        hystrix_command(
            "indexer", open_=True, error_percentage=55, success=9, failure=11, short_circuited=30
        ),
        hystrix_command("stripe", force_open=True, open_=True),
    ]
    t = target(world, fake, ScrapeKind.HYSTRIX, "/hystrix.stream")
    # when it is scraped
    started = timezone.now()
    scraping.scrape([t.pk])
    # then it read one round (well under the read limit) and stored both commands
    assert (timezone.now() - started).total_seconds() < scraping.HYSTRIX_READ_SECONDS
    states = {s.circuit.name: s for s in CircuitInstanceState.objects.select_related("circuit")}
    assert states["indexer"].state == "open" and states["indexer"].failure_rate == 55
    assert (states["indexer"].calls, states["indexer"].rejected_calls) == (20, 30)
    assert (states["indexer"].latency_p50_ms, states["indexer"].latency_p99_ms) == (12, 250)
    assert states["indexer"].thresholds == {"failure_rate": 50, "minimum_calls": 20}
    assert states["stripe"].state == "forced_open" and states["stripe"].source == "hystrix"


@pytest.mark.django_db
def test_a_failing_target_is_recorded_and_others_still_count(
    world: Any, fake: FakeInstance
) -> None:
    fake.metrics = resilience4j_page("indexer", "closed")
    good = target(world, fake, ScrapeKind.PROMETHEUS, "/metrics")
    missing = target(world, fake, ScrapeKind.PROMETHEUS, "/nothing-here")
    redirected = target(world, fake, ScrapeKind.PROMETHEUS, "/elsewhere")
    scraping.scrape([good.pk, missing.pk, redirected.pk])
    errors = dict(ScrapeTarget.objects.values_list("pk", "last_error"))
    assert errors[good.pk] == ""
    assert "404" in errors[missing.pk]
    assert "302" in errors[redirected.pk]  # redirects are never followed
    assert ScrapeTarget.objects.get(pk=missing.pk).consecutive_failures == 1
    assert Circuit.objects.count() == 1


@pytest.mark.django_db
def test_due_targets_are_claimed_once_and_come_back_on_schedule(
    world: Any, fake: FakeInstance
) -> None:
    t = target(world, fake, ScrapeKind.PROMETHEUS, "/metrics")
    assert scraping.claim_due() == [t.pk]
    assert scraping.claim_due() == []  # leased and not due: nobody takes it again
    t.refresh_from_db()
    assert t.next_due_at > timezone.now() + timedelta(seconds=t.interval_seconds - 2)
    fake.metrics = resilience4j_page("indexer", "closed")
    scraping.scrape([t.pk])
    ScrapeTarget.objects.update(next_due_at=timezone.now())
    assert scraping.claim_due() == [t.pk]  # the scrape released the lease


@pytest.mark.django_db
def test_instance_labels_make_scrape_targets_and_deregistering_removes_them(world: Any) -> None:
    # given an instance that asks to be scraped, and one that does not
    labelled = Instance.objects.create(
        service=world.service,
        environment=world.production,
        host="127.0.0.1",
        port=7101,
        labels={"circuits.prometheus_path": "/metrics", "circuits.hystrix_path": "/hystrix.stream"},
    )
    Instance.objects.create(
        service=world.service, environment=world.production, host="127.0.0.1", port=7102
    )
    # when the sweep runs
    assert scraping.sync_all() == {"created": 2, "removed": 0}
    # then it has one target per format, keyed like the instance's own reports
    urls = sorted(ScrapeTarget.objects.values_list("kind", "url", "instance_key", "origin"))
    assert urls == [
        ("hystrix", "http://127.0.0.1:7101/hystrix.stream", "127.0.0.1:7101", TargetOrigin.LABELS),
        ("prometheus", "http://127.0.0.1:7101/metrics", "127.0.0.1:7101", TargetOrigin.LABELS),
    ]
    # when the instance deregisters, its targets go
    labelled.lifecycle = Lifecycle.DEREGISTERED
    labelled.save()
    assert scraping.sync_all() == {"created": 0, "removed": 2}


@pytest.mark.django_db
def test_a_target_at_a_metadata_address_is_refused(api_as: Any) -> None:
    response = api_as("owner").post(
        "/api/v1/circuits/scrape-targets",
        {
            "kind": "prometheus",
            "url": "http://169.254.169.254/metrics",
            "service": "checkout",
            "environment": "production",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "metadata" in response.json()["error"]["fields"]["url"][0]


@pytest.mark.django_db
def test_an_owner_adds_a_manual_target_keyed_by_its_address(api_as: Any) -> None:
    response = api_as("owner").post(
        "/api/v1/circuits/scrape-targets",
        {
            "kind": "hystrix",
            "url": "http://10.1.2.3:8080/hystrix.stream",
            "service": "checkout",
            "environment": "production",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["instance_key"] == "10.1.2.3:8080"
    assert response.json()["origin"] == "manual"


@pytest.mark.django_db
def test_the_beat_dispatches_due_targets_to_workers(
    world: Any, fake: FakeInstance, settings: Any
) -> None:
    from circuits import tasks
    from controlplane.celery import app

    fake.metrics = resilience4j_page("indexer", "half_open")
    target(world, fake, ScrapeKind.PROMETHEUS, "/metrics")
    # Celery runs the scrape in-process here (no worker in unit tests); the beat path is real.
    app.conf.task_always_eager = True
    try:
        assert tasks.dispatch_scrapes() == 1
    finally:
        app.conf.task_always_eager = False
    assert Circuit.objects.get().state == "half_open"
