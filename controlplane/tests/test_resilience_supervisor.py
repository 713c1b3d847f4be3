"""`make run` does not go down with one of its processes: honcho runs each Procfile line
under scripts/keep_running.py, which starts a dead process again (waiting longer after each
quick death) and says so, and Ctrl-C still stops everything.

Real honcho, real processes; the first test runs the Procfile's real `worker` line against a
Redis of the test's own and kills the worker with SIGKILL.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.tests.resilience import ROOT, OwnRedis, wait_for

pytestmark = pytest.mark.slow
HONCHO = str(Path(sys.executable).with_name("honcho"))
KEEP_RUNNING = str(ROOT / "scripts" / "keep_running.py")


class Honcho:
    """honcho on a Procfile of the test's, in its own session; its log in `log`."""

    def __init__(self, directory: Path, procfile: str, env: dict[str, str]) -> None:
        self.log = directory / "honcho.log"
        (directory / "Procfile").write_text(procfile)
        self.process = subprocess.Popen(
            [HONCHO, "start", "-f", str(directory / "Procfile"), "-d", str(ROOT)],
            cwd=ROOT, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def ctrl_c(self) -> int:
        """What Ctrl-C in the terminal does: SIGINT to the whole foreground group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(20)

    def kill(self) -> None:
        """Stop it the way Ctrl-C does (honcho then stops its processes), SIGKILL if stuck."""
        if self.process.poll() is None:
            try:
                self.ctrl_c()
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def children_named(pattern: str) -> list[int]:
    """Pids of running processes whose command line matches `pattern`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if re.search(pattern, text):
            found.append(int(cmdline.parent.name))
    return found


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def procfile_line(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line
    raise AssertionError(f"no {name} line in the Procfile")


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_is_started_again_and_the_rest_keeps_running(
    tmp_path: Path, own_redis: OwnRedis
) -> None:
    from controlplane.tests.browser import subprocess_environment

    # given the Procfile's worker line (with a name of this test's) and a steady neighbour
    name = f"supervised-{os.getpid()}"
    worker = procfile_line("worker").replace("--loglevel INFO", f"-n {name}@%h --loglevel INFO")
    nap = f"sleep 600.{os.getpid()}"  # a command line no other test runs
    neighbour = f"neighbour: {sys.executable} {KEEP_RUNNING} neighbour -- {nap}\n"
    env = {**subprocess_environment(), "REDIS_URL": own_redis.url,
           "CELERY_BROKER_URL": own_redis.url}  # fmt: skip
    honcho = Honcho(tmp_path, worker + "\n" + neighbour, env)
    try:
        wait_for(lambda: "ready." in honcho.text(), 60, "the worker to be ready")
        celery = rf"^\S+ \S*celery -A controlplane worker .*-n {name}@"  # not the shells around it
        first = children_named(celery)
        neighbours = children_named(rf"^{nap}")
        # when the worker's main process is killed
        main = min(first)
        os.kill(main, signal.SIGKILL)
        # then keep_running says so and starts it again; honcho stops nothing
        wait_for(lambda: "restarting in 1 s (restart 1)" in honcho.text(), 20, "the restart")
        assert "exited with signal SIGKILL" in honcho.text()
        wait_for(lambda: honcho.text().count("ready.") >= 2, 60, "the worker to be ready again")
        again = children_named(celery)
        assert again and main not in again
        assert set(first).isdisjoint(again), "the dead worker's pool processes were left"
        assert children_named(rf"^{nap}") == neighbours
        assert "stopped" not in honcho.text()
        # when Ctrl-C is pressed, then everything stops and nothing is left behind
        honcho.ctrl_c()
        wait_for(lambda: not children_named(rf"{celery}|^{nap}"), 15, "all to stop")
    finally:
        honcho.kill()


def test_a_process_that_keeps_dying_is_retried_ever_more_slowly(tmp_path: Path) -> None:
    # given a command that dies at once, every time
    log = tmp_path / "keep_running.log"
    with log.open("wb") as output:
        supervisor = subprocess.Popen(
            [sys.executable, KEEP_RUNNING, "crashy", "--", "sh", "-c", "exit 3"],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            # when it has died a few times
            wait_for(lambda: "(restart 3)" in log.read_text(), 15, "three restarts")
        finally:
            supervisor.send_signal(signal.SIGTERM)
            code = supervisor.wait(10)
    # then each wait was twice the one before, each death reported with its exit code
    lines = [line for line in log.read_text().splitlines() if "keep_running: crashy" in line]
    assert lines[:3] == [
        "keep_running: crashy: exited with code 3 after 0.0 s; restarting in 1 s (restart 1)",
        "keep_running: crashy: exited with code 3 after 0.0 s; restarting in 2 s (restart 2)",
        "keep_running: crashy: exited with code 3 after 0.0 s; restarting in 4 s (restart 3)",
    ]
    # and told to stop, it stops at once, without an error
    assert code == 0


def test_it_names_its_usage_when_no_command_is_given() -> None:
    result = subprocess.run(
        [sys.executable, KEEP_RUNNING, "web"], capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 2
    assert "give the command after --" in result.stderr
