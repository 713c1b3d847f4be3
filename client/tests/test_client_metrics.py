"""What an instance reports about itself: work in flight (at once when it becomes busy, so
the scaler never picks it), its deletion cost and its own values, batched; and none of it
ever stalls or breaks the service while the control plane is away."""

from __future__ import annotations

import time

import pytest
from signalbox_client import Signalbox

from tests.fake_control_plane import FakeControlPlane, closed_port_url

PROTECTION = "/api/v1/instances/1/protection"


def instance_of(url: str, **settings: object) -> Signalbox:
    return Signalbox(
        url,
        "sbx_t",
        service="checkout",
        environment="production",
        host="10.0.0.5",
        port=8080,
        register=True,
        **settings,  # type: ignore[arg-type]
    )


def named(values: list[dict[str, object]], name: str) -> list[object]:
    return [v["value"] for v in values if v["name"] == name]


def test_busy_is_reported_at_once_and_idle_at_the_next_report(
    control_plane: FakeControlPlane,
) -> None:
    # given an instance reporting every second
    signalbox = instance_of(control_plane.url, metrics_interval=1.0).start()
    try:
        assert control_plane.wait_for(lambda: signalbox.stats()["instance_id"] == 1)
        # when a request starts
        started = time.monotonic()
        signalbox.begin_work()
        # then Signalbox hears in_flight 1 at once, by the instance's id
        assert control_plane.wait_for(lambda: named(control_plane.metrics(), "in_flight"), 1)
        assert time.monotonic() - started < 0.5
        assert control_plane.metrics()[0]["instance"] == 1
        # when requests come and go quickly for a while (still busy, as last reported)
        for _ in range(200):
            with signalbox.work():
                pass
        signalbox.end_work()
        # then that costs no extra report: the idle count goes with the next regular one
        assert control_plane.wait_for(lambda: 0.0 in named(control_plane.metrics(), "in_flight"))
    finally:
        signalbox.stop()
    assert named(control_plane.metrics(), "in_flight")[:2] == [1.0, 0.0]
    assert len(control_plane.requests("/api/v1/metrics")) <= 4


def test_deletion_cost_and_the_services_own_values_go_in_one_batch(
    control_plane: FakeControlPlane,
) -> None:
    # given a registered instance that was not started (flush sends on this thread)
    signalbox = instance_of(control_plane.url)
    signalbox.poll_overrides()
    assert signalbox._heartbeat()
    # when it sets its deletion cost and reports two values
    signalbox.deletion_cost = 25
    signalbox.report_metrics({"cpu_percent": 41.5, "queue.depth": 12})
    signalbox.flush()
    # then they went together, with the instance's id and a time each
    [batch] = control_plane.requests("/api/v1/metrics")
    values = batch.body["metrics"]
    assert [(v["instance"], v["name"], v["value"]) for v in values] == [
        (1, "deletion_cost", 25.0),
        (1, "cpu_percent", 41.5),
        (1, "queue.depth", 12.0),
    ]
    assert all(v["at"] for v in values)
    assert signalbox.stats()["metrics_sent"] == 3 and signalbox.deletion_cost == 25.0


def test_names_and_values_the_api_would_refuse_are_refused_at_the_call() -> None:
    signalbox = instance_of("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="queue-depth"):
        signalbox.report_metrics({"queue-depth": 3})
    with pytest.raises(ValueError, match="not a finite number"):
        signalbox.report_metrics({"cpu_percent": float("nan")})
    with pytest.raises(ValueError, match="not a finite number"):
        signalbox.deletion_cost = "high"  # type: ignore[assignment]
    assert signalbox.stats()["metrics_buffered"] == 0


def test_a_refused_batch_is_dropped_and_said(control_plane: FakeControlPlane) -> None:
    control_plane.metrics_status = 400
    signalbox = instance_of(control_plane.url)
    signalbox.report_metrics({"cpu_percent": 10})
    signalbox.flush()
    signalbox.flush()
    stats = signalbox.stats()
    assert (stats["metrics_rejected"], stats["metrics_buffered"]) == (1, 0)
    assert "metrics refused (400)" in stats["last_error"]


def test_nothing_stalls_while_the_control_plane_is_down_and_it_all_arrives_after() -> None:
    # given a running instance whose control plane refuses connections
    url = closed_port_url()
    port = int(url.rsplit(":", 1)[1])
    signalbox = instance_of(url, instance_id=1, lifecycle_interval=0.05, metrics_interval=0.2)
    signalbox.start()
    try:
        # when the service works, protects itself and reports values meanwhile
        started = time.perf_counter()
        for _ in range(1000):
            with signalbox.work():
                pass
        signalbox.begin_work()
        signalbox.protect(60, reason="batch job")
        signalbox.report_metrics({"cpu_percent": 80})
        per_call = (time.perf_counter() - started) / 1000
        time.sleep(0.3)
        # then none of it waited on the network, and the failures are counted
        assert per_call < 0.001
        assert "refused" in signalbox.stats()["last_error"]
        assert signalbox.protected_until is None
        # when the control plane comes back where the instance expects it
        with FakeControlPlane(port=port) as plane:
            # then the protection and the values get there (the retries back off to 1-2 s)
            assert plane.wait_for(lambda: plane.requests(PROTECTION), 5)
            assert plane.wait_for(lambda: named(plane.metrics(), "cpu_percent") == [80.0], 5)
            assert plane.wait_for(lambda: signalbox.protected_until is not None, 5)
            assert named(plane.metrics(), "in_flight")[-1] == 1.0
    finally:
        signalbox.stop(timeout=3)
    assert signalbox.stats()["metrics_dropped"] == 0


def test_an_unpaired_end_work_is_counted_not_raised(control_plane: FakeControlPlane) -> None:
    signalbox = instance_of(control_plane.url)
    signalbox.end_work()
    assert signalbox.in_flight == 0 and signalbox.stats()["unbalanced_end_work"] == 1
    with signalbox.work():
        assert signalbox.in_flight == 1
    assert signalbox.in_flight == 0


def test_an_instance_that_does_not_register_names_itself_by_address(
    control_plane: FakeControlPlane,
) -> None:
    signalbox = Signalbox(
        control_plane.url,
        "sbx_t",
        service="checkout",
        environment="production",
        host="10.0.0.5",
        port=8080,
    )
    signalbox.report_metrics({"memory_mb": 512})
    signalbox.flush()
    [value] = control_plane.metrics()
    assert {k: value[k] for k in ("service", "environment", "host", "port")} == {
        "service": "checkout",
        "environment": "production",
        "host": "10.0.0.5",
        "port": 8080,
    }
