"""An instance that stops reporting turns stale after the configured time; never silently closed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from circuits import staleness
from circuits.models import Circuit, CircuitInstanceState
from circuits.services import circuits_towards
from circuits.tests.conftest import batch, report
from controlplane.models import Event

URL = "/api/v1/circuits/reports"


def go_quiet(*instance_keys: str, seconds: int = 120) -> None:
    """Pretend these instances last reported `seconds` ago."""
    CircuitInstanceState.objects.filter(instance_key__in=instance_keys).update(
        received_at=timezone.now() - timedelta(seconds=seconds)
    )


@pytest.mark.django_db
def test_a_silent_instance_turns_stale_and_stops_counting(reporter: Any, settings: Any) -> None:
    # given two instances, one open, one closed
    settings.SIGNALBOX_CIRCUITS_STALE_SECONDS = 60
    reporter.post(
        URL,
        batch(
            report(instance="a:1", state="open", calls=10, failure_rate=90.0),
            report(instance="b:1", calls=10, failure_rate=0.0),
        ),
        format="json",
    )
    # when the open one goes quiet past the stale time and the sweep runs
    go_quiet("a:1")
    swept = staleness.mark_stale()
    # then it is stale (still saying what it last said), and no longer counts
    circuit = Circuit.objects.get()
    assert swept == [circuit.pk]
    quiet = CircuitInstanceState.objects.get(instance_key="a:1")
    assert quiet.stale and quiet.state == "open"
    assert (circuit.state, circuit.stale_instances, circuit.open_instances) == ("closed", 1, 0)
    assert circuit.failure_rate == 0.0


@pytest.mark.django_db(transaction=True)
def test_a_circuit_with_every_instance_silent_is_stale_not_closed(reporter: Any) -> None:
    reporter.post(URL, batch(report(instance="a:1")), format="json")
    go_quiet("a:1")
    staleness.mark_stale()
    circuit = Circuit.objects.get()
    assert circuit.state == "stale"
    assert Event.objects.filter(action="circuit.stale", subject_id=str(circuit.pk)).count() == 1
    # and a second sweep says nothing new
    staleness.mark_stale()
    assert Event.objects.filter(action="circuit.stale").count() == 1


@pytest.mark.django_db
def test_a_fresh_report_brings_a_stale_instance_back(reporter: Any) -> None:
    reporter.post(URL, batch(report(instance="a:1", ago=5)), format="json")
    go_quiet("a:1")
    staleness.mark_stale()
    reporter.post(URL, batch(report(instance="a:1", state="half_open")), format="json")
    state = CircuitInstanceState.objects.get()
    assert not state.stale and state.state == "half_open"
    assert Circuit.objects.get().state == "half_open"


@pytest.mark.django_db
def test_readers_see_stale_even_before_the_sweep_runs(world: Any, reporter: Any) -> None:
    # given a circuit towards indexer that reported, then nothing for longer than the stale time
    reporter.post(URL, batch(report("indexer")), format="json")
    Circuit.objects.update(updated_at=timezone.now() - timedelta(minutes=5))
    # when a rollout's analysis asks for the circuits towards indexer
    views = circuits_towards(world.other_service.pk, world.production.pk)
    # then it is told stale, not closed
    assert [(v.caller, v.state) for v in views] == [("checkout", "stale")]


@pytest.mark.django_db
def test_states_of_long_gone_instances_are_forgotten(reporter: Any) -> None:
    reporter.post(URL, batch(report(instance="a:1"), report(instance="b:1")), format="json")
    go_quiet("a:1", seconds=3 * 24 * 3600)
    staleness.mark_stale()
    assert staleness.forget_departed() == 1
    circuit = Circuit.objects.get()
    assert (circuit.total_instances, circuit.stale_instances) == (1, 0)
