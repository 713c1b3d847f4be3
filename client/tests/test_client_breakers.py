"""Breakers report their calls and state changes to Signalbox from a background thread."""

from __future__ import annotations

from typing import Any

import pybreaker
import pytest
from signalbox_client import Signalbox

from tests.fake_control_plane import FakeControlPlane


def boom() -> None:
    raise ConnectionError("payments is down")


def client_of(plane: FakeControlPlane, **kwargs: Any) -> Signalbox:
    return Signalbox(
        plane.url,
        "sbx_test_token",
        service="checkout",
        environment="production",
        host="10.0.0.5",
        port=8080,
        **kwargs,
    )


def test_calls_and_failures_are_reported_in_one_batch(control_plane: FakeControlPlane) -> None:
    # given a breaker guarding calls to payments
    signalbox = client_of(control_plane)
    payments = signalbox.breaker("payments", protects="payments", fail_max=10)
    # when the app makes three good calls and one bad one
    for _ in range(3):
        assert payments.call(lambda: "ok") == "ok"
    with pytest.raises(ConnectionError):
        payments.call(boom)
    signalbox.flush()
    # then Signalbox received one report with the counts, for this instance
    [batch] = control_plane.requests("/api/v1/circuits/reports")
    assert batch.headers["Authorization"] == "Bearer sbx_test_token"
    assert (batch.body["service"], batch.body["environment"], batch.body["instance"]) == (
        "checkout",
        "production",
        "10.0.0.5:8080",
    )
    [report] = batch.body["reports"]
    assert report["circuit"] == "payments" and report["protects"] == "payments"
    assert (report["state"], report["calls"], report["failed_calls"], report["failure_rate"]) == (
        "closed",
        4,
        1,
        25.0,
    )
    assert report["thresholds"]["fail_max"] == 10
    assert signalbox.stats()["sent"] == 1


def test_calls_refused_by_an_open_breaker_are_counted_as_rejected(
    control_plane: FakeControlPlane,
) -> None:
    signalbox = client_of(control_plane)
    payments = signalbox.breaker("payments", fail_max=2, reset_timeout=60)
    for _ in range(2):
        with pytest.raises((ConnectionError, pybreaker.CircuitBreakerError)):
            payments.call(boom)
    for _ in range(3):
        with pytest.raises(pybreaker.CircuitBreakerError):
            payments.call(lambda: "never called")
    signalbox.flush()
    [report] = control_plane.reports()
    assert (report["state"], report["calls"], report["failed_calls"], report["rejected_calls"]) == (
        "open",
        2,
        2,
        3,
    )


def test_a_breaker_that_opens_is_reported_at_once_not_at_the_next_interval(
    control_plane: FakeControlPlane,
) -> None:
    # given a running client that reports only once a minute
    signalbox = client_of(control_plane, report_interval=60, override_interval=60).start()
    try:
        payments = signalbox.breaker("payments", fail_max=1)
        # when the breaker trips
        with pytest.raises(pybreaker.CircuitBreakerError):
            payments.call(boom)
        # then Signalbox hears "open" within moments
        assert control_plane.wait_for(
            lambda: any(r["state"] == "open" for r in control_plane.reports()), timeout=3
        )
    finally:
        signalbox.stop()


def test_an_existing_pybreaker_can_be_watched(control_plane: FakeControlPlane) -> None:
    signalbox = client_of(control_plane)
    legacy = pybreaker.CircuitBreaker(fail_max=3, name="inventory")
    signalbox.watch(legacy, protects="inventory", slow_call_seconds=0.0)
    legacy.call(lambda: None)
    signalbox.flush()
    [report] = control_plane.reports()
    assert (report["circuit"], report["calls"], report["slow_calls"], report["slow_call_rate"]) == (
        "inventory",
        1,
        1,
        100.0,
    )


def test_a_breaker_needs_a_unique_name(control_plane: FakeControlPlane) -> None:
    signalbox = client_of(control_plane)
    signalbox.breaker("payments")
    with pytest.raises(ValueError, match="already"):
        signalbox.breaker("payments")
    with pytest.raises(ValueError, match="name"):
        signalbox.watch(pybreaker.CircuitBreaker())
