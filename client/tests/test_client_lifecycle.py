"""The scale-in handshake against the stand-in control plane: the client polls its lifecycle
cheaply, hears the drain once on its own thread, heartbeats while work is in flight, says
ready when it ends, and stops re-registering once it is on its way out."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from signalbox_client import Drain, Signalbox

from tests.fake_control_plane import FakeControlPlane

LIFECYCLE = "/api/v1/instances/1/lifecycle"
READY = "/api/v1/instances/1/ready-to-terminate"
HEARTBEAT = "/api/v1/instances/1/lifecycle-heartbeat"
REGISTER = "/api/v1/instances/register"


def instance_of(url: str, **settings: Any) -> Signalbox:
    """A registering instance that looks at its lifecycle every 50 ms."""
    return Signalbox(
        url,
        "sbx_t",
        service="checkout",
        environment="production",
        host="10.0.0.5",
        port=8080,
        register=True,
        lifecycle_interval=0.05,
        **settings,
    )


def test_it_polls_its_lifecycle_cheaply_with_its_registered_id(
    control_plane: FakeControlPlane,
) -> None:
    # given a running instance that registered (the control plane gave it id 1)
    signalbox = instance_of(control_plane.url).start()
    try:
        # when it has looked a few times while nothing changed
        assert control_plane.wait_for(lambda: len(control_plane.requests(LIFECYCLE)) >= 3)
    finally:
        signalbox.stop()
    # then the first look was a plain GET and every later one revalidated (a 304)
    first, *later = control_plane.requests(LIFECYCLE)
    assert "If-None-Match" not in first.headers
    assert {s.headers.get("If-None-Match") for s in later} == {
        control_plane.etag(control_plane.lifecycle)
    }
    assert signalbox.stats()["instance_id"] == 1
    assert signalbox.lifecycle == "in_service" and not signalbox.draining


def test_on_drain_fires_once_on_the_clients_thread_and_it_says_ready_when_idle(
    control_plane: FakeControlPlane,
) -> None:
    # given an instance with two drain callbacks, one of them broken
    heard: list[tuple[str, Drain]] = []
    signalbox = instance_of(control_plane.url)

    @signalbox.on_drain
    def stop_consuming(drain: Drain) -> None:
        heard.append((threading.current_thread().name, drain))

    signalbox.on_drain(lambda drain: 1 / 0)
    signalbox.start()
    try:
        assert control_plane.wait_for(lambda: signalbox.lifecycle == "in_service")
        # when Signalbox drains it (the router confirmed) and it has no work in flight
        control_plane.drain(heartbeat_seconds=60)
        assert control_plane.wait_for(lambda: control_plane.requests(READY))
        time.sleep(0.3)  # more polls go by
    finally:
        signalbox.stop()
    # then the callback ran once, on the client's thread, with the deadline
    [(thread, drain)] = heard
    assert thread == "signalbox-client"
    assert drain.state == "terminate_when_ready" and drain.heartbeat_seconds == 60
    assert drain.deadline is not None and drain.deadline.isoformat() == "2025-01-07T10:16:00+00:00"
    # and it said ready once, by itself, without heartbeating (nothing to wait for)
    [ready] = control_plane.requests(READY)
    assert ready.body == {"reason": "no work in flight"}
    assert control_plane.requests(HEARTBEAT) == []
    assert signalbox.stats()["ready_sent"]


def test_work_in_flight_holds_ready_back_and_is_heartbeaten_at_half_the_timeout(
    control_plane: FakeControlPlane,
) -> None:
    # given a drained instance (2 s lifecycle timeout) with a request still in flight
    signalbox = instance_of(control_plane.url).start()
    try:
        signalbox.begin_work()
        control_plane.drain(heartbeat_seconds=2)
        assert control_plane.wait_for(lambda: signalbox.draining)
        # when the request takes 2.5 s more
        time.sleep(2.5)
        # then it heartbeat at once and every second, and did not say ready
        beats = control_plane.requests(HEARTBEAT)
        assert 3 <= len(beats) <= 4
        assert control_plane.requests(READY) == []
        # when the request ends
        signalbox.end_work()
        # then it says ready at once (woken, not at the next poll)
        ended = time.monotonic()
        assert control_plane.wait_for(lambda: control_plane.requests(READY), 2)
        assert time.monotonic() - ended < 0.5
    finally:
        signalbox.stop()
    assert signalbox.stats()["lifecycle_heartbeats"] == len(beats)


def test_with_auto_ready_off_the_service_says_when(control_plane: FakeControlPlane) -> None:
    # given an instance that says ready itself (it drains a queue of its own)
    signalbox = instance_of(control_plane.url, auto_ready=False).start()
    try:
        control_plane.drain()
        assert control_plane.wait_for(lambda: signalbox.draining)
        time.sleep(0.2)
        assert control_plane.requests(READY) == []
        # when it has finished
        signalbox.ready_to_terminate("queue empty")
        assert control_plane.wait_for(lambda: control_plane.requests(READY), 2)
    finally:
        signalbox.stop()
    # then its reason went with it
    assert [s.body for s in control_plane.requests(READY)] == [{"reason": "queue empty"}]


def test_it_stops_registering_once_it_said_ready(control_plane: FakeControlPlane) -> None:
    # given a drained instance registering again every second
    signalbox = instance_of(control_plane.url, heartbeat_seconds=1).start()
    try:
        assert control_plane.wait_for(lambda: len(control_plane.requests(REGISTER)) >= 2)
        control_plane.drain()
        assert control_plane.wait_for(lambda: control_plane.requests(READY))
        registered = len(control_plane.requests(REGISTER))
        # when two more beats' time passes after it said ready
        time.sleep(2.2)
    finally:
        signalbox.stop()
    # then it registered no more (that would bring a terminated instance back to life)
    assert len(control_plane.requests(REGISTER)) == registered


def test_a_service_stopping_while_drained_says_ready_on_the_way_out(
    control_plane: FakeControlPlane,
) -> None:
    # given a drained instance with work it will never finish
    signalbox = instance_of(control_plane.url).start()
    signalbox.begin_work()
    control_plane.drain()
    assert control_plane.wait_for(lambda: signalbox.draining)
    # when the service stops anyway
    signalbox.stop()
    # then Signalbox is told not to wait for it
    [ready] = control_plane.requests(READY)
    assert ready.body == {"reason": "the service stopped"}


def test_protection_is_asked_for_and_lifted(control_plane: FakeControlPlane) -> None:
    # given a running instance
    signalbox = instance_of(control_plane.url).start()
    try:
        # when it protects itself for a batch job, then lifts it
        signalbox.protect(30, reason="nightly export")
        assert control_plane.wait_for(lambda: signalbox.protected_until is not None)
        signalbox.unprotect()
        assert control_plane.wait_for(lambda: signalbox.protected_until is None)
    finally:
        signalbox.stop()
    # then both went to the protection endpoint, with the minutes and the reason
    calls = control_plane.requests("/api/v1/instances/1/protection")
    assert [(s.method, s.body) for s in calls] == [
        ("POST", {"minutes": 30, "reason": "nightly export"}),
        ("DELETE", None),
    ]


def test_bad_protection_minutes_are_refused_at_the_call() -> None:
    signalbox = instance_of("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="1 to 2880"):
        signalbox.protect(0)
    with pytest.raises(ValueError, match="1 to 2880"):
        signalbox.protect(3000)
