"""Overrides set in Signalbox are polled with If-None-Match and obeyed, until they expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pybreaker
import pytest
from signalbox_client import Signalbox

from tests.fake_control_plane import FakeControlPlane, closed_port_url


def forced(
    state: str, circuit: str = "payments", minutes: float = 10, environment: Any = None
) -> dict[str, Any]:
    return {
        "id": 1,
        "circuit": circuit,
        "state": state,
        "environment": environment,
        "reason": "stripe incident",
        "created_by": "deployer",
        "expires_at": (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat(),
    }


def client_of(url: str) -> Signalbox:
    return Signalbox(url, "sbx_t", service="checkout", environment="production")


def test_forced_open_refuses_calls_without_making_them(control_plane: FakeControlPlane) -> None:
    # given an operator forced payments open
    control_plane.overrides = [forced("forced_open")]
    signalbox = client_of(control_plane.url)
    payments = signalbox.breaker("payments")
    # when the client polls and the app calls payments
    assert signalbox.poll_overrides()
    called = []
    with pytest.raises(pybreaker.CircuitBreakerError, match="stripe incident"):
        payments.call(lambda: called.append(1))
    # then the call was refused, and it reports forced_open with the refusal counted
    assert called == []
    signalbox.flush()
    [report] = control_plane.reports()
    assert (report["state"], report["rejected_calls"]) == ("forced_open", 1)


def test_forced_closed_lets_calls_through_an_open_breaker(control_plane: FakeControlPlane) -> None:
    signalbox = client_of(control_plane.url)
    payments = signalbox.breaker("payments", fail_max=1, reset_timeout=600)
    with pytest.raises(pybreaker.CircuitBreakerError):
        payments.call(lambda: 1 / 0)
    control_plane.overrides = [forced("forced_closed")]
    signalbox.poll_overrides()
    assert payments.call(lambda: "through") == "through"
    signalbox.flush()
    assert control_plane.reports()[-1]["state"] == "disabled"


def test_the_poller_revalidates_with_the_etag(control_plane: FakeControlPlane) -> None:
    signalbox = client_of(control_plane.url)
    control_plane.overrides = [forced("forced_open")]
    signalbox.poll_overrides()
    signalbox.poll_overrides()
    first, second = control_plane.requests("/api/v1/circuits/overrides")
    assert "If-None-Match" not in first.headers
    assert second.headers["If-None-Match"] == control_plane.etag()
    assert first.query == {"service": ["checkout"], "environment": ["production"]}
    assert signalbox.overrides.state_for("payments") == "forced_open"  # kept on 304
    control_plane.overrides = []
    signalbox.poll_overrides()
    assert signalbox.overrides.state_for("payments") is None


def test_an_environment_override_beats_an_everywhere_one(control_plane: FakeControlPlane) -> None:
    control_plane.overrides = [
        forced("forced_open"),
        forced("forced_closed", environment="production"),
    ]
    signalbox = client_of(control_plane.url)
    signalbox.poll_overrides()
    assert signalbox.overrides.state_for("payments") == "forced_closed"


def test_an_override_lapses_at_its_expiry_even_with_the_control_plane_gone(
    control_plane: FakeControlPlane,
) -> None:
    control_plane.overrides = [forced("forced_open", minutes=0.005)]  # 0.3 s
    signalbox = client_of(control_plane.url)
    signalbox.poll_overrides()
    assert signalbox.overrides.state_for("payments") == "forced_open"
    signalbox.transport.base_url = closed_port_url()
    assert not signalbox.poll_overrides()  # unreachable: keeps what it knew...
    assert control_plane.wait_for(lambda: signalbox.overrides.state_for("payments") is None, 2)


def test_a_watched_plain_breaker_is_opened_and_closed_by_overrides(
    control_plane: FakeControlPlane,
) -> None:
    signalbox = client_of(control_plane.url)
    legacy = pybreaker.CircuitBreaker(name="payments")
    signalbox.watch(legacy)
    control_plane.overrides = [forced("forced_open")]
    signalbox.poll_overrides()
    signalbox.flush()
    assert legacy.current_state == "open"
    control_plane.overrides = [forced("forced_closed")]
    signalbox.poll_overrides()
    signalbox.flush()
    assert legacy.current_state == "closed"
