"""The client library against the real control plane: reports land, overrides flow with ETag/304.

The control plane runs in pytest-django's live server (a real HTTP server in a thread);
the client talks to it over sockets exactly as a service would.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pybreaker
import pytest
from rest_framework.test import APIClient

from catalog.models import ApiToken, Instance
from circuits.models import Circuit, CircuitInstanceState

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))
from signalbox_client import Signalbox

pytestmark = pytest.mark.django_db(transaction=True)


def eventually(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def signalbox(world: Any, live_server: Any) -> Any:
    _, plain = ApiToken.issue(team=world.team, name="checkout-prod", scopes=["report"])
    client = Signalbox(
        live_server.url,
        plain,
        service="checkout",
        environment="production",
        host="127.0.0.1",
        port=18080,
        version="1.4.2",
        register=True,
        heartbeat_seconds=30,
    )
    yield client
    client.stop(timeout=5)


def test_a_service_registers_and_its_tripped_breaker_shows_open(world: Any, signalbox: Any) -> None:
    # given a running client with a breaker guarding calls to indexer
    indexer = signalbox.breaker("indexer", protects="indexer", fail_max=2)
    signalbox.start()
    assert eventually(lambda: signalbox.stats()["registered"]), signalbox.stats()["last_error"]
    # when the breaker trips
    for _ in range(2):
        with pytest.raises((ZeroDivisionError, pybreaker.CircuitBreakerError)):
            indexer.call(lambda: 1 / 0)
    signalbox.flush()
    # then the instance is in the catalog and the circuit is open, towards indexer
    instance = Instance.objects.get(service=world.service, port=18080)
    state = CircuitInstanceState.objects.select_related("circuit").get()
    assert (state.circuit.name, state.circuit.target_label, state.state) == (
        "indexer",
        "indexer",
        "open",
    )
    assert state.instance_id == instance.pk and state.failed_calls == 2
    assert Circuit.objects.get().state == "open"


def test_an_override_set_by_a_deployer_is_obeyed_and_revalidated(
    world: Any, signalbox: Any
) -> None:
    # given a breaker the service uses, and a first poll with nothing forced
    payments = signalbox.breaker("payments-api")
    assert signalbox.poll_overrides()
    empty_tag = signalbox.overrides.etag
    assert signalbox.poll_overrides() and signalbox.overrides.etag == empty_tag  # 304
    # when a deployer forces it open through the API
    deployer = APIClient()
    deployer.force_authenticate(world.deployer)
    created = deployer.post(
        "/api/v1/circuits/overrides",
        {
            "service": "checkout",
            "circuit": "payments-api",
            "state": "forced_open",
            "reason": "stripe outage",
            "ttl_seconds": 900,
        },
        format="json",
    )
    assert created.status_code == 201
    # then the next poll brings it, calls are refused, and Signalbox sees forced_open
    signalbox.poll_overrides()
    assert signalbox.overrides.etag != empty_tag
    with pytest.raises(pybreaker.CircuitBreakerError, match="stripe outage"):
        payments.call(lambda: "never")
    signalbox.flush()
    state = CircuitInstanceState.objects.get(circuit__name="payments-api")
    assert (state.state, state.rejected_calls) == ("forced_open", 1)
