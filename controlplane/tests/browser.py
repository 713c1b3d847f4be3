"""Browser test fixtures (a pytest plugin, loaded by the root conftest): a real uvicorn
process serving HTTP and websockets against the test database, and Debian's chromium.

Use them in a test marked `@pytest.mark.browser` and `@pytest.mark.django_db(transaction=True)`
(the server is another process: it only sees committed rows). See docs/testing.md.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SERVER_START_SECONDS = 30


def subprocess_environment() -> dict[str, str]:
    """What another process of ours (uvicorn, `manage.py`) needs to use the test database."""
    db = {key: str(value or "") for key, value in settings.DATABASES["default"].items()}
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.tests.browser_settings",
        "SIGNALBOX_ENV": "test",
        "DEBUG": "false",
        # The test database (test_<name>), which pytest-django has set up by now.
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}{port}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }


class AsgiServer:
    """A uvicorn process serving controlplane.asgi, pointed at the test database.

    `stop()` and `start()` again keep the same port, so an open page can be shown its
    server going away and coming back (reconnect tests).
    """

    def __init__(self, log: Path, environment: dict[str, str] | None = None) -> None:
        self.log = log
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.environment = environment or {}  # settings of this server's own (SSO, email)

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT, no trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # bound here and handed over: no race
        self.port = listener.getsockname()[1]
        command = [
            sys.executable, "-m", "uvicorn", "controlplane.asgi:application",
            "--fd", str(listener.fileno()), "--lifespan", "off", "--loop", "asyncio",
            "--log-level", "warning",
            # The Procfile's websocket flags: the live hub writes frames straight to them.
            "--ws", "websockets-sansio", "--ws-per-message-deflate", "false",
        ]  # fmt: skip
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env={**subprocess_environment(), **self.environment},
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=[listener.fileno()],
            )
        listener.close()
        self._wait_until_up()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def _wait_until_up(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.process.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(
            f"uvicorn did not answer /healthz in {SERVER_START_SECONDS} s; see {self.log}"
        )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keep each phase's report on the test so the `page` fixture can tell it failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def asgi_server(django_db_setup: None) -> Iterator[AsgiServer]:
    """One uvicorn for the session (its log: test-artifacts/asgi-server.log)."""
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "asgi-server.log"
    log.write_text("")
    server = AsgiServer(log)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_asgi_server(django_db_setup: None) -> Iterator[AsgiServer]:
    """A uvicorn for this test alone, for tests that stop and restart it."""
    ARTIFACTS.mkdir(exist_ok=True)
    server = AsgiServer(ARTIFACTS / "own-asgi-server.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright.

    One per test, not per session: Playwright's sync API keeps an asyncio loop running in
    this thread while it is started, which would turn every later test's ORM call into
    SynchronousOnlyOperation. While it runs, the test's own ORM calls are allowed (the loop
    is Playwright's, not ours: nothing else runs on it).
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(
    transactional_db: None, chromium: Browser, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh browser tab on the server; screenshot in test-artifacts/ when the test fails.

    The tab's base URL is `own_asgi_server` when the test asks for one, else `asgi_server`.
    It needs committed data (the server is another process), hence `transactional_db`,
    which also makes the database flush wait until the browser is gone.
    """
    own = "own_asgi_server" in request.fixturenames
    server: AsgiServer = request.getfixturevalue("own_asgi_server" if own else "asgi_server")
    context = chromium.new_context(base_url=server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    console: list[str] = []
    tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        ARTIFACTS.mkdir(exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        (ARTIFACTS / f"{name}.console.txt").write_text("\n".join(console) + "\n")
    context.close()


def log_in(page: Page, username: str, password: str) -> None:
    """Log in through the login form, as a person would."""
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login/" not in url)
