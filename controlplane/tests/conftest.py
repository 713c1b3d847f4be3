"""Control plane test fixtures: a private live channel, sessions, a Redis we can stop."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from channels.layers import channel_layers


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # PBKDF2 costs ~0.5 s per persona and `world` makes five. The browser tests' server
    # accepts these hashes too (controlplane/tests/browser_settings.py).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def private_live_channel(settings: Any) -> Iterator[str]:
    """A channel-layer prefix of this test's own, so no other test run's pushes reach it."""
    prefix = f"signalbox-test-{uuid.uuid4().hex[:12]}:live"
    settings.CHANNEL_LAYERS = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "prefix": prefix},
        }
    }
    channel_layers.backends = {}  # layers are cached per alias; build ours
    yield prefix
    channel_layers.backends = {}


@pytest.fixture
def session_cookie() -> Any:
    """session_cookie(user) -> the Cookie header value of a logged-in browser session."""
    from django.test import Client

    def make(user: Any) -> bytes:
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    return make


@dataclass
class RedisServer:
    """A redis-server of the test's own, on a free port."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    server = RedisServer(port=port, process=process)
    deadline = time.monotonic() + 10
    while True:
        try:
            server.client().ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"redis-server did not start on port {port}") from None
            time.sleep(0.05)
    yield server
    if process.poll() is None:
        server.stop()
