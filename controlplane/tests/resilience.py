"""Real processes for the restart and overload tests (test_resilience_*.py): a Redis and a
PostgreSQL of the test's own, which the test stops and starts again on the same port, and
Signalbox's web, worker and beat processes, started as the Procfile starts them.

Nothing here is shared with other tests: each server listens on 127.0.0.1 on a free port,
lives in the test's tmp_path, and is stopped by the fixture that started it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis

from controlplane.tests.browser import subprocess_environment

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
T = TypeVar("T")


# bench/resilience_restart.py runs the restart tests with the 20 s outage and reads
# what they measured from the file named here.
OUTAGE_SECONDS = float(os.environ.get("SIGNALBOX_RESILIENCE_OUTAGE_SECONDS", "8"))
FIGURES_FILE = os.environ.get("SIGNALBOX_RESILIENCE_FIGURES", "")


def record(name: str, **figures: Any) -> None:
    """Add this test's measurements to FIGURES_FILE (JSON lines), when a bench asked."""
    if FIGURES_FILE:
        import json

        with open(FIGURES_FILE, "a") as out:
            out.write(json.dumps({"test": name, **figures}) + "\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], T], seconds: float, what: str) -> T:
    """condition()'s first truthy value within `seconds`, else AssertionError naming `what`."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(0.1)


class OwnRedis:
    """A redis-server on a port of its own, without persistence (what a restart loses is
    everything in it: the worst case for queued messages)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)

    def start(self) -> None:
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(self._answers, 10, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False


class OwnPostgres:
    """A PostgreSQL cluster of its own (initdb into a temporary folder, its own port), run as
    the postgres user when the test runs as root (initdb refuses root). The folder is not
    under pytest's tmp_path, which only root may enter; `remove()` deletes it."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="signalbox-pg-"))
        self.data = self.directory / "pgdata"
        self.port = free_port()
        self.bin = Path(os.path.realpath(shutil.which("pg_ctl") or "pg_ctl")).parent

    def _run(self, *command: str) -> None:
        argv = [str(self.bin / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.directory}'\nfsync = off\n"
                "max_connections = 60\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "pg.log"),
                  "-w", "-t", "30", "start")  # fmt: skip

    def stop(self) -> None:
        # fast: what a restart by an operator (or a failover) does to open connections
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def copy_database(self, source_url: str, database: str) -> None:
        """A copy (schema and rows) of the database at `source_url`, as `database` here."""
        own = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        subprocess.run([str(self.bin / "createdb"), *own, database], check=True)
        dump = subprocess.Popen(
            [str(self.bin / "pg_dump"), "--no-owner", "--no-privileges", source_url],
            stdout=subprocess.PIPE,
        )
        subprocess.run(
            [str(self.bin / "psql"), *own, "-q", "-v", "ON_ERROR_STOP=1", "-d", database],
            stdin=dump.stdout, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        assert dump.wait(30) == 0, "pg_dump failed"


# The worker flags of the Procfile's `worker` line (docker-compose's worker runs the same).
PROCFILE_WORKER = ("--without-gossip", "--without-mingle", "--without-heartbeat")


class Stack:
    """Signalbox's processes as the Procfile runs them, on the test's database and Redis."""

    def __init__(self, logs: Path, **environment: str) -> None:
        self.logs = logs
        self.env = {**subprocess_environment(), "PYTHONPATH": str(ROOT), **environment}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.web_port = 0

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start_web(self, *extra: str, **environment: str) -> None:
        self.web_port = free_port()
        self._start(
            "web",
            [sys.executable, "-m", "uvicorn", "controlplane.asgi:application",
             "--host", "127.0.0.1", "--port", str(self.web_port), "--lifespan", "off",
             "--ws", "websockets-sansio", "--log-level", "warning", *extra],
            environment,
        )  # fmt: skip
        wait_for(lambda: self.get("/healthz")[0] == 200, 60, f"web /healthz; see {self.logs}")

    def start_worker(self, name: str = "worker", *flags: str) -> None:
        """A prefork worker on every queue, with `flags` (the Procfile's: PROCFILE_WORKER)."""
        self._start(
            name,
            [CELERY, "-A", "controlplane", "worker", "-Q", "probes,rollouts,notify,default",
             "--concurrency", "2", *flags, "-n", f"{name}-{os.getpid()}@%h",
             "--loglevel", "INFO"],
            {"DATABASE_CONN_MAX_AGE": "60"},
        )  # fmt: skip
        wait_for(lambda: "ready." in self.log(name), 60, f"{name} ready; see {self.logs}")

    def start_beat(self) -> None:
        self._start(
            "beat",
            [CELERY, "-A", "controlplane", "beat", "--loglevel", "INFO",
             "--schedule", str(self.logs / "celerybeat-schedule")],
            {},
        )  # fmt: skip

    def _start(self, name: str, command: list[str], environment: dict[str, str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env={**self.env, **environment}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def alive(self, name: str) -> bool:
        return self.processes[name].poll() is None

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def get(self, path: str, timeout: float = 3) -> tuple[int, bytes]:
        """(status, body) of GET path on the web process; (0, b"") if it did not answer."""
        try:
            with urllib.request.urlopen(self.web_url + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 0, b""

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(5)


def json_of(body: bytes) -> Any:
    import json

    return json.loads(body)
