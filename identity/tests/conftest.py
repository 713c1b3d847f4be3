"""Fixtures for sign-in tests: a real OpenID Connect provider (django-oauth-toolkit, its own
process and database), a Signalbox server configured for it, and a real SMTP server."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from alerts.tests.conftest import Mailbox
from controlplane.tests.browser import ARTIFACTS, AsgiServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(settings.BASE_DIR)
START_SECONDS = 30
CLIENT_ID = "signalbox-tests"
GROUP_ROLES = "payments-oncall=payments:deployer,search-leads=search:owner,sre=platform:admin"


@dataclass
class Person:
    username: str
    password: str
    email: str
    groups: list[str]
    first_name: str = ""


@dataclass
class IdentityProvider:
    """The provider's address and socket, before it serves (Signalbox must know its issuer)."""

    listener: socket.socket
    database: Path
    log: Path
    private_key: str
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = int(self.listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url + "/o"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "identity.tests.provider.settings",
            "IDP_SECRET_KEY": secrets.token_urlsafe(50),
            "IDP_DATABASE": str(self.database),
            "IDP_RSA_PRIVATE_KEY": self.private_key,
            "IDP_ISSUER": self.issuer,
        }

    def start(self, redirect_uri: str, people: list[Person]) -> None:
        """Register Signalbox and the people, then serve."""
        spec = {
            "client_id": CLIENT_ID,
            "client_secret": self.client_secret,
            "redirect_uri": redirect_uri,
            "people": [vars(person) for person in people],
        }
        seeded = subprocess.run(
            [sys.executable, "-m", "identity.tests.provider.seed"],
            input=json.dumps(spec).encode(), cwd=ROOT, env=self.environment(),
            capture_output=True, timeout=60,
        )  # fmt: skip
        assert seeded.returncode == 0, seeded.stderr.decode()
        command = [
            sys.executable, "-m", "uvicorn", "identity.tests.provider.asgi:application",
            "--fd", str(self.listener.fileno()), "--lifespan", "off", "--log-level", "warning",
        ]  # fmt: skip
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.environment(), stdout=output,
                stderr=subprocess.STDOUT, pass_fds=[self.listener.fileno()],
            )  # fmt: skip
        self.listener.close()
        discovery = self.issuer + "/.well-known/openid-configuration"
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the identity provider exited; see {self.log}")
            try:
                with urllib.request.urlopen(discovery, timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the identity provider did not serve {discovery}; see {self.log}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def identity_provider(tmp_path: Path) -> Iterator[IdentityProvider]:
    ARTIFACTS.mkdir(exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    provider = IdentityProvider(
        listener=listener,
        database=tmp_path / "idp.sqlite3",
        log=ARTIFACTS / "identity-provider.log",
        private_key=pem,
    )
    try:
        yield provider
    finally:
        provider.stop()
        listener.close()


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on loopback, as the alert tests use: (mailbox, port)."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


def start_server(environment: dict[str, str]) -> AsgiServer:
    """A Signalbox uvicorn with these settings, on a port chosen before it starts (its
    SIGNALBOX_BASE_URL names it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = AsgiServer(
        ARTIFACTS / "identity-asgi-server.log",
        {"SIGNALBOX_BASE_URL": f"http://127.0.0.1:{port}", **environment},
    )
    server.port = port
    server.start()
    return server


@pytest.fixture
def sso_server(
    transactional_db: None, identity_provider: IdentityProvider
) -> Iterator[AsgiServer]:
    """Signalbox with single sign-on at the test provider and GROUP_ROLES mapped. The test
    starts the provider (identity_provider.start) with the people it needs."""
    ARTIFACTS.mkdir(exist_ok=True)
    server = start_server(
        {
            "SIGNALBOX_OIDC_ISSUER": identity_provider.issuer,
            "SIGNALBOX_OIDC_CLIENT_ID": CLIENT_ID,
            "SIGNALBOX_OIDC_CLIENT_SECRET": identity_provider.client_secret,
            "SIGNALBOX_OIDC_SCOPES": "openid email profile groups",
            "SIGNALBOX_OIDC_GROUP_ROLES": GROUP_ROLES,
        }
    )
    try:
        yield server
    finally:
        server.stop()


def open_tab(chromium: Browser, base_url: str) -> Page:
    context = chromium.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    return context.new_page()


def wait_for(condition: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
