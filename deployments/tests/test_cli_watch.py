"""`signalbox rollout ... --wait` through network trouble, `rollout get --watch` in a real
terminal (a pty) and in a pipe, and `rollout list` through every page, against a live server.

The blips are real: a small TCP proxy in front of the live server drops connections (a
reset) or answers 503 for a while, as a restarting Signalbox or a load balancer would."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from catalog.models import ApiToken
from cli.signalbox_cli.main import main
from deployments.models import Rollout
from deployments.tests.conftest import Fleet, run_cli

live = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
START = ("rollout", "start", "--service", "checkout", "--env", "production", "--version", "2.0")
PAUSED = '[{"set_weight": 50}, {"pause": {}}, {"set_weight": 100}]'


class Blips:
    """A TCP proxy on 127.0.0.1 in front of `upstream`: in mode "pass" it relays, in "drop"
    it resets each connection as it arrives, in "503" it answers 503 Service Unavailable."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, mode: str) -> int:
        with self.lock:
            return self.seen[mode]

    def wait_for(self, mode: str, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(mode) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{mode}: {self.count(mode)} connection(s), not {count}")
            time.sleep(0.02)

    def close(self) -> None:
        self.closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        mode = self.mode
        with self.lock:
            self.seen[mode] += 1
        if mode == "drop":  # RST, as a dying process or a restarted pod does
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return
        if mode == "503":
            _read_head(conn)
            conn.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\n"
                b"Content-Length: 11\r\nConnection: close\r\n\r\nupstream ko"
            )
            conn.close()
            return
        upstream = socket.create_connection(self.upstream)
        threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
        _pipe(conn, upstream)


def _read_head(conn: socket.socket) -> None:
    data = b""
    conn.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def token(world: Any) -> str:
    _, plain = ApiToken.issue(team=world.team, name="ci", scopes=["read", "deploy"])
    return plain


@pytest.fixture
def blips(live_server: Any) -> Any:
    host, port = live_server.url.removeprefix("http://").split(":")
    proxy = Blips((host, int(port)))
    yield proxy
    proxy.close()


def _wait_for_rollout(predicate: Any, timeout: float = 30.0) -> Rollout:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rollout = Rollout.objects.order_by("-id").first()
        if rollout is not None and predicate(rollout):
            return rollout
        time.sleep(0.05)
    raise AssertionError("the rollout never got there")


def _as_person(live_server: Any, token: str, *argv: str) -> int:
    """Another person acting on the live server directly (not through the proxy)."""
    out, err = io.StringIO(), io.StringIO()
    return main(["--url", live_server.url, "--token", token, *argv], out=out, err=err)


@live
def test_wait_rides_out_resets_and_503s_and_reports_the_real_end(
    fleet: Fleet, token: str, blips: Blips, live_server: Any, reconciling: None
) -> None:
    """Today's blip (exit 7 while the rollout carries on) is gone: the rollout is aborted
    while Signalbox cannot be reached, and --wait comes back to tell exactly that (exit 3)."""
    failures: list[BaseException] = []

    def chaos() -> None:
        try:
            paused = _wait_for_rollout(lambda r: r.state == "paused")
            looked = blips.count("pass")
            blips.wait_for("pass", looked + 2)  # --wait has seen it paused
            blips.mode = "drop"
            blips.wait_for("drop", 3)
            assert (
                _as_person(
                    live_server, token, "rollout", "abort", str(paused.pk), "--reason", "bad smell"
                )
                == 0
            )
            _wait_for_rollout(lambda r: r.pk == paused.pk and r.is_terminal)
            blips.mode = "503"
            blips.wait_for("503", 2)
            blips.mode = "pass"
        except BaseException as exc:  # surfaced below, not lost in the thread
            failures.append(exc)
            blips.mode = "pass"

    person = threading.Thread(target=chaos, daemon=True)
    person.start()
    env = {"SIGNALBOX_URL": blips.url, "SIGNALBOX_TOKEN": token}
    code, out, err = run_cli(
        env, *START, "--steps", PAUSED, "--wait", "--poll", "0.2", "--timeout", "90"
    )
    person.join(30)
    assert not failures, failures
    assert code == 3, (out, err)
    assert "aborted by token:payments/ci: bad smell" in out
    assert blips.count("drop") >= 3 and blips.count("503") >= 2
    assert "cannot reach Signalbox" in err and "retrying in" in err
    assert "Signalbox failed on its side (503)" in err
    assert "back in contact after" in err
    assert err.count("retrying in") >= 5  # each reset and each 503 was retried


@live
def test_wait_gives_up_at_its_deadline_when_signalbox_stays_down(
    fleet: Fleet, token: str, blips: Blips, reconciling: None
) -> None:
    def outage() -> None:
        _wait_for_rollout(lambda r: r.state == "paused")
        blips.wait_for("pass", blips.count("pass") + 1)
        blips.mode = "drop"

    threading.Thread(target=outage, daemon=True).start()
    env = {"SIGNALBOX_URL": blips.url, "SIGNALBOX_TOKEN": token}
    began = time.monotonic()
    code, out, err = run_cli(
        env, *START, "--steps", PAUSED, "--wait", "--poll", "0.2", "--timeout", "4"
    )
    took = time.monotonic() - began
    assert code == 7, (out, err)
    assert "gave up at the deadline" in err
    assert "outcome is unknown; it carries on without you" in err
    assert blips.count("drop") >= 2  # it did retry
    assert took < 4 + 10, took  # bounded by --timeout (plus one last short request)
    assert Rollout.objects.get().state == "paused"  # and the rollout did carry on


@live
def test_get_watch_redraws_in_a_terminal_and_appends_lines_in_a_pipe(
    fleet: Fleet, token: str, live_server: Any, reconciling: None
) -> None:
    env = {"SIGNALBOX_URL": live_server.url, "SIGNALBOX_TOKEN": token}
    code, out, _ = run_cli(env, *START, "--steps", PAUSED)
    assert code == 0, out
    rollout = _wait_for_rollout(lambda r: r.state == "paused")
    # in a real terminal: the view is redrawn in place until the rollout ends
    master, slave = pty.openpty()
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "rollout",
            "get",
            str(rollout.pk),
            "--watch",
            "--poll",
            "0.2",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env={**os.environ, **env, "COLUMNS": "120"},
        stdout=slave,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    screen = _read_until(master, b"State:     paused", watcher)
    assert _as_person(live_server, token, "rollout", "promote", str(rollout.pk), "--full") == 0
    screen += _read_until(master, None, watcher)
    os.close(master)
    assert watcher.wait(30) == 0, watcher.stderr.read() if watcher.stderr else ""
    text = screen.decode()
    assert text.startswith("\x1b[?25l")  # the cursor hidden while redrawing
    assert "\x1b[J" in text and "F\x1b[J" in text  # cursor up N lines, clear below
    frames = text.split("signalbox rollout get")
    assert len(frames) >= 3
    assert "State:     paused" in frames[1]
    assert "State:     succeeded" in frames[-1] and "✔ 1." in frames[-1]
    assert text.rstrip().endswith("\x1b[?25h")  # and shown again at the end
    # piped (CI logs): no escape codes, a timestamped line per change, the outcome as exit code
    code, out, _ = run_cli(env, "rollout", "get", str(rollout.pk), "--watch")
    assert code == 0 and "\x1b[" not in out
    assert (
        f"#{rollout.pk} checkout 2.0 in production: succeeded · step Succeeded · 100% new "
        "/ 0% stable · all traffic on 2.0"
    ) in out.splitlines()[-1]
    # for scripts: one JSON object per change
    code, out, _ = run_cli(env, "rollout", "get", str(rollout.pk), "--watch", "-o", "json")
    assert code == 0
    assert [json.loads(row)["state"] for row in out.splitlines()] == ["succeeded"]
    code, out, _ = run_cli(env, "rollout", "get", str(rollout.pk), "-o", "yaml")
    assert code == 0 and f"id: {rollout.pk}\n" in out and "state: succeeded\n" in out


def _read_until(fd: int, marker: bytes | None, process: subprocess.Popen[bytes]) -> bytes:
    """What the pty shows, until `marker` appears (None: until the process closes it)."""
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the process has closed the terminal
                return seen
            if not chunk:
                return seen
            seen += chunk
            if marker is not None and marker in seen:
                return seen
        elif process.poll() is not None and marker is not None:
            raise AssertionError(f"the watcher ended before showing {marker!r}: {seen!r}")
    raise AssertionError(f"the pty never showed {marker!r}: {seen[-2000:]!r}")


@live
def test_list_follows_every_page(world: Any, token: str, blips: Blips) -> None:
    Rollout.objects.bulk_create(
        Rollout(
            team=world.team,
            service=world.service,
            environment=world.production,
            from_version=f"1.{n}",
            to_version=f"1.{n + 1}",
            strategy="canary",
            steps=[{"set_weight": 100}],
            state="succeeded",
        )
        for n in range(23)
    )
    # through the proxy: the API's next links name the proxy's address, followed as given
    env = {"SIGNALBOX_URL": blips.url, "SIGNALBOX_TOKEN": token}
    code, out, err = run_cli(env, "rollout", "list", "--chunk-size", "5", "-o", "json")
    assert code == 0, err
    ids = [r["id"] for r in json.loads(out)]
    assert sorted(ids) == sorted(Rollout.objects.values_list("id", flat=True))
    assert blips.count("pass") == 5  # 23 rollouts, 5 a page
    code, out, _ = run_cli(env, "rollout", "list", "--chunk-size", "5")
    rows = out.splitlines()
    assert code == 0 and len(rows) == 24 and rows[0].startswith("ID ")
    assert "1.22 → 1.23" in rows[1]  # newest first
    code, _, err = run_cli(env, "rollout", "list", "--chunk-size", "0")
    assert code == 2 and "--chunk-size must be from 1 to 500" in err
