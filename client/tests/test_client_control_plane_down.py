"""With the control plane down, slow or refusing, calls are unaffected and drops are counted."""

from __future__ import annotations

import time

from signalbox_client import Signalbox

from tests.fake_control_plane import FakeControlPlane, closed_port_url


def timed_calls(breaker: object, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        breaker.call(lambda: None)  # type: ignore[attr-defined]
    return (time.perf_counter() - started) / count


def test_calls_are_unaffected_while_the_control_plane_is_down() -> None:
    # given a running client whose control plane refuses connections
    signalbox = Signalbox(
        closed_port_url(),
        "sbx_t",
        service="checkout",
        environment="production",
        host="10.0.0.5",
        port=8080,
        register=True,
        report_interval=0.05,
        override_interval=0.05,
    ).start()
    try:
        payments = signalbox.breaker("payments")
        # when the app makes calls for half a second while the reporter keeps failing
        deadline = time.monotonic() + 0.5
        per_call = []
        while time.monotonic() < deadline:
            per_call.append(timed_calls(payments, 200))
        # then every call went through, each in microseconds, and the failures are counted
        assert max(per_call) < 0.001
        stats = signalbox.stats()
        assert stats["send_failures"] >= 1 and stats["sent"] == 0
        assert "Connection refused" in stats["last_error"] or "refused" in stats["last_error"]
        assert not stats["registered"]
    finally:
        signalbox.stop(timeout=5)


def test_a_hanging_control_plane_does_not_slow_the_app(control_plane: FakeControlPlane) -> None:
    # given a control plane that takes 3 s to answer anything
    control_plane.hang_seconds = 3
    signalbox = Signalbox(
        control_plane.url,
        "sbx_t",
        service="checkout",
        environment="production",
        report_interval=0.05,
        timeout=1.0,
    ).start()
    try:
        payments = signalbox.breaker("payments")
        assert control_plane.wait_for(lambda: control_plane.seen, 2)  # the reporter is stuck
        # then the app's calls still take microseconds
        assert timed_calls(payments, 1000) < 0.001
    finally:
        signalbox.stop(timeout=0.1)


def test_a_full_buffer_drops_the_oldest_reports_and_counts_them(
    control_plane: FakeControlPlane,
) -> None:
    # given a client with room for 5 reports and a control plane answering 503
    control_plane.reports_status = 503
    signalbox = Signalbox(
        control_plane.url,
        "sbx_t",
        service="checkout",
        environment="production",
        buffer_size=5,
    )
    payments = signalbox.breaker("payments")
    # when 12 reports pile up (one per flush) while it fails
    for _ in range(12):
        payments.call(lambda: None)
        signalbox.flush()
    assert signalbox.stats()["dropped"] == 7
    assert signalbox.stats()["buffered"] == 5
    # then, once it answers again, the newest 5 are delivered, oldest first
    control_plane.reports_status = 202
    control_plane.seen.clear()
    signalbox.flush()
    delivered = control_plane.reports()
    # (this flush's own snapshot pushed one more old report out: 8 dropped in all)
    assert len(delivered) == 5 and signalbox.stats()["dropped"] == 8
    times = [r["reported_at"] for r in delivered]
    assert times == sorted(times)
    # each report carries the rolling window: the newest has all 12 calls
    assert [r["calls"] for r in delivered] == [9, 10, 11, 12, 12]
    assert signalbox.stats()["buffered"] == 0


def test_refused_reports_are_dropped_not_retried_forever(control_plane: FakeControlPlane) -> None:
    control_plane.reports_status = 403
    signalbox = Signalbox(control_plane.url, "sbx_t", service="checkout", environment="production")
    signalbox.breaker("payments")
    signalbox.flush()
    signalbox.flush()
    stats = signalbox.stats()
    assert (stats["rejected"], stats["buffered"]) == (2, 0)
    assert "403" in stats["last_error"]
