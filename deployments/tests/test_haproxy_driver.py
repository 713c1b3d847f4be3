"""The HAProxy driver against a real HAProxy, with real HTTP traffic through it."""

from __future__ import annotations

from typing import Any

import pytest

from deployments.drivers.base import (
    BREAKER_THRESHOLD,
    DriverError,
    Split,
    Target,
    split_weights,
)
from deployments.drivers.haproxy import HAProxyDriver

# Weighted round robin is deterministic, so 400 requests land within a point or two of the
# weights; 3 points of tolerance covers the interleaving at the start of each change.
TOLERANCE = 3.0
REQUESTS = 400


def target(server: Any) -> Target:
    return Target("127.0.0.1", server.port)


def driver(proxy: Any, **route: Any) -> HAProxyDriver:
    return HAProxyDriver(
        name="test-haproxy",
        connection=proxy.connection,
        credentials="",
        route={"backend": "be_checkout", **route},
        timeout=1.0,
        retries=1,
    )


def test_it_splits_real_traffic_as_the_weights_say(
    version_servers: Any, haproxy_factory: Any
) -> None:
    # given two servers of 1.0 and one of 2.0 behind HAProxy
    stable = [version_servers.start("1.0"), version_servers.start("1.0")]
    canary = [version_servers.start("2.0")]
    proxy = haproxy_factory({"be_checkout": stable + canary})
    router = driver(proxy)
    for percent in (0, 10, 25, 50, 100):
        split = Split(percent, tuple(map(target, stable)), tuple(map(target, canary)))
        # when
        applied = router.apply(split, {})
        seen = proxy.traffic(REQUESTS)
        # then the router reports the split and real requests follow it
        assert applied.canary_percent == pytest.approx(percent, abs=0.01)
        observed = 100.0 * seen["2.0"] / REQUESTS
        assert observed == pytest.approx(percent, abs=TOLERANCE), (percent, seen)
        assert seen["1.0"] + seen["2.0"] == REQUESTS


def test_it_adds_a_server_for_an_instance_the_backend_lacks(
    version_servers: Any, haproxy_factory: Any
) -> None:
    # given a backend that only lists the stable server
    stable = version_servers.start("1.0")
    proxy = haproxy_factory({"be_checkout": [stable]})
    canary = version_servers.start("2.0")
    router = driver(proxy)
    # when
    applied = router.apply(Split(50, (target(stable),), (target(canary),)), {})
    # then the new instance is a server with half the traffic
    assert applied.canary_percent == 50
    assert proxy.traffic(100)["2.0"] == pytest.approx(50, abs=TOLERANCE)
    assert canary.address in {s.address for s in router.servers()}


def test_it_refuses_to_add_servers_when_the_route_forbids_it(
    version_servers: Any, haproxy_factory: Any
) -> None:
    stable = version_servers.start("1.0")
    proxy = haproxy_factory({"be_checkout": [stable]})
    canary = version_servers.start("2.0")
    with pytest.raises(DriverError, match="has no server for"):
        driver(proxy, add_missing_servers=False).apply(
            Split(10, (target(stable),), (target(canary),)), {}
        )


def test_a_drained_server_takes_no_new_requests_until_ready(
    version_servers: Any, haproxy_factory: Any
) -> None:
    # given 1.0 and 2.0 servers sharing traffic
    old, new = version_servers.start("1.0"), version_servers.start("2.0")
    proxy = haproxy_factory({"be_checkout": [old, new]})
    router = driver(proxy)
    router.apply(Split(50, (target(old),), (target(new),)), {})
    # when the old one drains
    router.drain((target(old),), {})
    # then everything goes to the new one, and the read-back says so
    assert proxy.traffic(50) == {"2.0": 50}
    assert router.read(Split(50, (target(old),), (target(new),)), {}).canary_percent == 100
    # and after ready it shares again
    router.ready((target(old),), {})
    assert proxy.traffic(50)["1.0"] == 25


def test_setting_weights_readies_a_drained_server_that_should_take_traffic(
    version_servers: Any, haproxy_factory: Any
) -> None:
    old, new = version_servers.start("1.0"), version_servers.start("2.0")
    proxy = haproxy_factory({"be_checkout": [old, new]})
    router = driver(proxy)
    router.drain((target(old),), {})
    applied = router.apply(Split(0, (target(old),), (target(new),)), {})
    assert applied.canary_percent == 0
    assert proxy.traffic(20) == {"1.0": 20}


def test_it_reads_per_server_stats_from_show_stat(
    version_servers: Any, haproxy_factory: Any
) -> None:
    # given a canary that fails every request
    old, new = version_servers.start("1.0"), version_servers.start("2.0")
    new.failing = True
    proxy = haproxy_factory({"be_checkout": [old, new]})
    router = driver(proxy)
    router.apply(Split(50, (target(old),), (target(new),)), {})
    # when
    proxy.traffic(40)
    stats = router.stats((target(old), target(new)), {})
    # then
    assert stats[new.address].responses == 20
    assert stats[new.address].responses_5xx == 20
    assert stats[old.address].responses_2xx == 20
    assert stats[old.address].rtime_ms is not None


def test_it_names_a_missing_backend(version_servers: Any, haproxy_factory: Any) -> None:
    proxy = haproxy_factory({"be_checkout": [version_servers.start("1.0")]})
    router = HAProxyDriver(
        name="t",
        connection=proxy.connection,
        credentials="",
        route={"backend": "be_nope"},
        timeout=1.0,
        retries=0,
    )
    with pytest.raises(DriverError, match="no backend 'be_nope'"):
        router.servers()


def test_an_unreachable_router_is_retried_then_the_breaker_opens(tmp_path: Any) -> None:
    # given a socket path nothing listens on
    router = HAProxyDriver(
        name="t-down",
        connection={"socket": str(tmp_path / "none.sock")},
        credentials="",
        route={"backend": "be"},
        timeout=0.2,
        retries=1,
    )
    # when it fails as many times as the breaker allows
    for _ in range(BREAKER_THRESHOLD):
        with pytest.raises(DriverError, match="failed 2 times: cannot reach"):
            router.servers()
    # then the breaker refuses without trying
    with pytest.raises(DriverError, match="circuit breaker open"):
        router.servers()


@pytest.mark.parametrize(
    ("percent", "stable", "canary", "weights"),
    [
        (10, 2, 1, (9, 2)),  # 2 stable x 9 = 18, 1 canary x 2 = 2: exactly 10%
        (25, 3, 2, (2, 1)),  # (150, 75) reduced: 3 x 2 = 6 stable vs 2 x 1 = 2 canary
        (50, 4, 4, (1, 1)),
        (0, 3, 1, (1, 0)),
        (100, 2, 3, (0, 1)),
    ],
)
def test_weights_split_exactly_when_they_fit(
    percent: int, stable: int, canary: int, weights: tuple[int, int]
) -> None:
    got = split_weights(percent, stable, canary)
    assert got == weights
    share = 100 * canary * got[1] / (canary * got[1] + stable * got[0])
    assert share == pytest.approx(percent)


def test_large_fleets_round_and_stay_close() -> None:
    # 37 stable, 3 canary at 1%: exact weights (297, 37) exceed 256, so they are scaled.
    stable_weight, canary_weight = split_weights(1, 37, 3)
    assert max(stable_weight, canary_weight) <= 256
    share = 100 * 3 * canary_weight / (3 * canary_weight + 37 * stable_weight)
    assert share == pytest.approx(1, abs=0.1)


def test_it_refuses_a_split_with_nobody_to_serve_it() -> None:
    with pytest.raises(DriverError, match="no instances"):
        split_weights(10, 2, 0)
    with pytest.raises(DriverError, match="no instances"):
        split_weights(90, 0, 2)
