"""Run one command and start it again whenever it dies, waiting longer after each quick death.

    python scripts/keep_running.py NAME -- COMMAND [ARG ...]

`make run` starts every process of the Procfile through this (honcho stops them all as soon
as one of its processes exits: without it, one crash took the whole demo down). It prints
what happened and when it tries again; it exits only when told to stop (SIGTERM, SIGINT:
what honcho sends on Ctrl-C), and then stops the command (and anything it started) first.
In production, let your own supervisor (systemd, Kubernetes) restart the bare command.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from types import FrameType

# Seconds to wait before restarting: doubling from FIRST_DELAY after each quick death, up to
# MAX_DELAY; a run that lasted STEADY_AFTER seconds counts as healthy and resets the wait.
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STEADY_AFTER = 30.0
# How long a command gets after SIGTERM before SIGKILL: under honcho's own 5 s, so that a
# Ctrl-C never leaves a process behind.
STOP_GRACE = 4.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Supervisor:
    """One command, kept running until `stop()`."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.command = command
        self.stopping = False
        self.stopping_at = 0.0
        self.process: subprocess.Popen[bytes] | None = None

    def say(self, message: str) -> None:
        print(f"keep_running: {self.name}: {message}", file=sys.stderr, flush=True)

    def run(self) -> int:
        delay = FIRST_DELAY
        restarts = 0
        while not self.stopping:
            started = time.monotonic()
            # A session of its own: when it dies, what it started (a prefork pool, uvicorn's
            # workers, a script's background job) is stopped with it before the restart, so
            # nothing is left holding its port.
            self.process = subprocess.Popen(
                self.command, start_new_session=True, preexec_fn=_die_with_parent
            )
            code = self._wait(self.process)
            self._stop_group(self.process.pid)
            if self.stopping:
                break
            lasted = time.monotonic() - started
            if lasted >= STEADY_AFTER:
                delay = FIRST_DELAY
            restarts += 1
            self.say(
                f"exited with {_describe(code)} after {lasted:.1f} s; "
                f"restarting in {delay:g} s (restart {restarts})"
            )
            if self._sleep(delay):
                break
            delay = min(delay * 2, MAX_DELAY)
        return 0

    def stop(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: stop the command and do not restart it."""
        if not self.stopping:
            self.stopping_at = time.monotonic()
        self.stopping = True
        if self.process is not None and self.process.poll() is None:
            self._signal_group(self.process.pid, signal.SIGTERM)

    def _wait(self, process: subprocess.Popen[bytes]) -> int:
        """The command's exit code; SIGKILL for it STOP_GRACE after being told to stop."""
        while True:
            try:
                return process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if self.stopping and time.monotonic() - self.stopping_at > STOP_GRACE:
                    self._signal_group(process.pid, signal.SIGKILL)

    def _sleep(self, seconds: float) -> bool:
        """Wait, unless told to stop meanwhile (True then)."""
        until = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < until:
            time.sleep(min(0.1, until - time.monotonic()))
        return self.stopping

    def _stop_group(self, pgid: int) -> None:
        """SIGTERM what is left of the command's session, SIGKILL it after STOP_GRACE."""
        if not self._signal_group(pgid, signal.SIGTERM):
            return
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline:
            if not self._signal_group(pgid, 0):
                return
            time.sleep(0.1)
        self._signal_group(pgid, signal.SIGKILL)

    @staticmethod
    def _signal_group(pgid: int, signum: int) -> bool:
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            return False
        return True


def _die_with_parent() -> None:
    """In the child, before it runs: on Linux, it gets SIGTERM if keep_running itself dies
    (even by SIGKILL), so no command outlives its supervisor."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _describe(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Keep one command running (see module doc).")
    parser.add_argument("name", help="what to call it in the log (the Procfile's name)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --, e.g. keep_running.py web -- uvicorn ...")
    supervisor = Supervisor(args.name, command)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
