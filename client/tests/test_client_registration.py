"""An instance registers itself, heartbeats by re-registering, and deregisters when it stops."""

from __future__ import annotations

import pytest
from signalbox_client import Signalbox

from tests.fake_control_plane import FakeControlPlane


def test_it_registers_heartbeats_and_deregisters(control_plane: FakeControlPlane) -> None:
    # given an instance configured to register, beating every second
    signalbox = Signalbox(
        control_plane.url,
        "sbx_t",
        service="checkout",
        environment="production",
        host="10.0.0.5",
        port=8080,
        version="1.4.2",
        zone="zone-a",
        labels={"pool": "blue"},
        register=True,
        heartbeat_seconds=1,
    )
    # when it runs for a while and stops
    signalbox.start()
    assert control_plane.wait_for(
        lambda: len(control_plane.requests("/api/v1/instances/register")) >= 2, 4
    )
    signalbox.stop()
    # then it registered with its address and details, beat again, and said goodbye
    first = control_plane.requests("/api/v1/instances/register")[0].body
    assert first == {
        "service": "checkout",
        "environment": "production",
        "host": "10.0.0.5",
        "port": 8080,
        "version": "1.4.2",
        "zone": "zone-a",
        "labels": {"pool": "blue"},
        "heartbeat_seconds": 1,
    }
    [goodbye] = control_plane.requests("/api/v1/instances/deregister")
    assert goodbye.body == {
        "service": "checkout",
        "environment": "production",
        "host": "10.0.0.5",
        "port": 8080,
    }


def test_registering_needs_an_address() -> None:
    with pytest.raises(ValueError, match="host and port"):
        Signalbox("http://127.0.0.1:1", "t", service="s", environment="e", register=True)


def test_it_reads_its_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALBOX_URL", "http://127.0.0.1:8000")
    monkeypatch.setenv("SIGNALBOX_TOKEN", "sbx_x")
    monkeypatch.setenv("SIGNALBOX_SERVICE", "checkout")
    monkeypatch.setenv("SIGNALBOX_ENVIRONMENT", "staging")
    monkeypatch.setenv("SIGNALBOX_PORT", "8080")
    monkeypatch.setenv("SIGNALBOX_HOST", "10.0.0.7")
    signalbox = Signalbox.from_env()
    assert (signalbox.service, signalbox.environment, signalbox.instance) == (
        "checkout",
        "staging",
        "10.0.0.7:8080",
    )
    monkeypatch.delenv("SIGNALBOX_TOKEN")
    with pytest.raises(ValueError, match="SIGNALBOX_TOKEN"):
        Signalbox.from_env()
