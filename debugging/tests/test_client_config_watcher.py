"""signalbox-client's ConfigWatcher against a real uvicorn: a live logger's level follows the
config and a debug window, goes back to its own level when they go, and is reported back."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from catalog.models import Instance
from debugging import config, windows
from debugging.config import Item
from debugging.models import AppliedLevels

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))
from signalbox_client.config import ConfigWatcher

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_it_changes_a_live_logger_level_and_restores_it(
    asgi_server: Any, world: Any, report_token: str
) -> None:
    # given: a logger the application set to WARNING itself
    live = logging.getLogger("payments.client.test")
    live.setLevel(logging.WARNING)
    config.change(
        world.service,
        world.production,
        actor="test",
        set_items=[Item("flag", "beta", True), Item("secret", "api_key", "k-123")],
    )
    watcher = ConfigWatcher(
        asgi_server.url, report_token, "checkout", "production", wait_seconds=30
    ).start()
    try:
        assert watcher.wait_for(lambda w: w.version == 1, timeout=10)
        assert watcher.flag("beta") is True and watcher.secret("api_key") == "k-123"
        # when: the config sets the logger to DEBUG (the held poll answers at once)
        config.change(
            world.service,
            world.production,
            actor="test",
            set_items=[Item("log_level", "payments.client.test", "DEBUG")],
        )
        # then
        assert watcher.wait_for(lambda w: w.version == 2, timeout=10)
        assert live.level == logging.DEBUG
        # when: the key is removed
        config.change(
            world.service,
            world.production,
            actor="test",
            remove=[("log_level", "payments.client.test")],
        )
        # then: the application's own level is back
        assert watcher.wait_for(lambda w: w.version == 3, timeout=10)
        assert live.level == logging.WARNING
    finally:
        watcher.stop()


def test_a_debug_window_reaches_the_instance_and_its_revert_is_reported(
    asgi_server: Any, world: Any, report_token: str
) -> None:
    instance = Instance.objects.create(
        service=world.service, environment=world.production, host="10.1.0.1", port=80
    )
    live = logging.getLogger("checkout.window.test")
    watcher = ConfigWatcher(
        asgi_server.url,
        report_token,
        "checkout",
        "production",
        instance=instance.pk,
        wait_seconds=30,
    ).start()
    try:
        assert watcher.wait_for(lambda w: w.etag is not None, timeout=10)
        # when: a window opens for this instance
        from datetime import timedelta

        window = windows.open_window(
            windows.Opening(
                world.service,
                world.production,
                "checkout.window.test",
                "DEBUG",
                timedelta(minutes=5),
                "incident #3",
                instance=instance,
            ),
            actor="test",
        )
        assert watcher.wait_for(lambda w: bool(w.document.get("debug_windows")), timeout=10)
        assert live.level == logging.DEBUG
        # when: it closes
        windows.close(window, actor="test", early=True)
        assert watcher.wait_for(lambda w: not w.document.get("debug_windows"), timeout=10)
        # then: the level is back and the instance said so
        assert live.level == logging.NOTSET
        report = AppliedLevels.objects.get(instance=instance)
        assert report.levels == {}
        windows.claim_reverts()
        assert windows.revert(window.pk)["verified"] == 1
    finally:
        watcher.stop()
