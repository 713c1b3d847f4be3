"""`signalbox rollout start|get|list|pause|resume|promote|abort|retry|rollback`.

`--wait` (on start and the actions) and `get --watch` follow a rollout until it ends and
exit with its outcome. They poll patiently: a dropped connection, a timeout, a 5xx or a
429 is retried with exponential backoff and jitter until --timeout, so a restart of
Signalbox or a network blip does not fail a CI job whose rollout carries on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any, TextIO

from . import helptext
from .client import Client, GaveUp, patiently, with_query
from .exits import (
    ABORTED,
    FAILED,
    INTERRUPTED,
    OK,
    REFUSED,
    ROLLED_BACK,
    TIMED_OUT,
    UNREACHABLE,
    USAGE,
    Usage,
)
from .output import add_chunk_size, add_output, chunk_size, dump, local_time, now, print_table

ENDINGS = {"succeeded": OK, "rolled_back": ROLLED_BACK, "aborted": ABORTED, "failed": FAILED}
ACTIONS = {
    "pause": "pause a rollout where it is (traffic stays as it is)",
    "resume": "resume a paused rollout",
    "promote": "skip the current pause or analysis (--full: every remaining step)",
    "abort": "abort: all traffic back to the stable version",
    "retry": "retry a rollout that was aborted or rolled back",
    "rollback": "roll back (a succeeded rollout: start a new one back to the previous version)",
}
WAIT_CODES = (OK, ROLLED_BACK, USAGE, ABORTED, FAILED, TIMED_OUT, REFUSED, UNREACHABLE, INTERRUPTED)
WAITING = (
    "With --wait the command follows the rollout to its end and exits with its outcome; "
    "network errors, timeouts, 5xx and 429 answers are retried with exponential backoff and "
    "jitter until --timeout, then it exits 7 (outcome unknown) or 5 (still running)."
)

Handler = Callable[[Client, argparse.Namespace, TextIO], int]


def add_parser(topics: Any) -> None:
    rollout = helptext.topic(
        topics,
        "rollout",
        "start, watch and act on rollouts",
        "Start a rollout of a service to a new version in one environment, follow it, and "
        "steer it (pause, resume, promote, abort, retry, roll back), as `kubectl argo "
        "rollouts` does for Argo Rollouts.",
    )
    commands = rollout.add_subparsers(dest="command", required=True, metavar="COMMAND")

    start = helptext.command(
        commands,
        "start",
        "start a rollout (idempotent with a key)",
        "Start rolling SERVICE out to VERSION in ENV with its canary or blue/green steps "
        "(the service's defaults unless --steps). Prints the rollout's id and page. With an "
        "idempotency key (your CI run id), a retried call returns the same rollout instead "
        "of starting a second one, and the start itself is retried over network errors.",
        [
            "signalbox rollout start --service checkout --env production --version 1.5.0 --wait",
            "signalbox rollout start --service checkout --env staging --version 1.5.0 "
            '--steps \'[{"set_weight": 20}, {"pause": {"seconds": 60}}]\'',
            "SIGNALBOX_IDEMPOTENCY_KEY=$CI_PIPELINE_ID signalbox rollout start ... --wait",
        ],
        WAIT_CODES,
        WAITING,
    )
    start.add_argument("--service", required=True, help="the service's slug")
    start.add_argument("--env", required=True, dest="environment", help="the environment's slug")
    start.add_argument("--version", required=True, help="the version to roll out")
    start.add_argument("--strategy", choices=["canary", "blue_green"])
    start.add_argument("--steps", help='JSON list, e.g. \'[{"set_weight": 10}, {"analysis": {}}]\'')
    start.add_argument(
        "--idempotency-key",
        default=os.environ.get("SIGNALBOX_IDEMPOTENCY_KEY", ""),
        help="a retried call with the same key returns the same rollout "
        "(default: $SIGNALBOX_IDEMPOTENCY_KEY, e.g. your CI run id)",
    )
    start.add_argument("--reason", default="", help="why (shown on the dashboard)")
    start.add_argument(
        "--override-freeze",
        default="",
        metavar="REASON",
        help="owners only: start despite a freeze window, for this reason",
    )
    _waiting(start)

    get = helptext.command(
        commands,
        "get",
        "show a rollout (--watch: live until it ends)",
        "Show a rollout: its state and step, the traffic weights, each step's outcome and "
        "the latest analysis with every measurement. With --watch it stays on: in a terminal "
        "it redraws in place; piped or in CI it appends a line per change. It exits, like "
        "--wait, with the rollout's outcome once it ends (0 while it still runs, without "
        "--watch). `status` is the same command.",
        [
            "signalbox rollout get 42",
            "signalbox rollout get 42 --watch",
            "signalbox rollout get 42 -o json | jq .state",
            "signalbox rollout get 42 --watch -o json   # one JSON object per line per change",
        ],
        WAIT_CODES,
        aliases=("status",),
    )
    get.add_argument("id", type=int, help="the rollout's id")
    get.add_argument("-w", "--watch", action="store_true", help="follow it until it ends")
    _timing(get, "with --watch")
    add_output(get, legacy_json=True)

    listing = helptext.command(
        commands,
        "list",
        "list rollouts, newest first (every page)",
        "List rollouts, newest first, following the API's pages to the end. Filters combine.",
        [
            "signalbox rollout list --service checkout --env production",
            "signalbox rollout list --active",
            "signalbox rollout list --state rolled_back -o yaml",
        ],
    )
    listing.add_argument("--service", help="the service's slug")
    listing.add_argument("--env", dest="environment", help="the environment's slug")
    listing.add_argument("--team", help="the owning team's slug")
    listing.add_argument(
        "--state",
        choices=[
            "pending",
            "progressing",
            "paused",
            "rolling_back",
            "succeeded",
            "rolled_back",
            "aborted",
            "failed",
        ],
    )
    listing.add_argument("--active", action="store_true", help="only rollouts still running")
    add_chunk_size(listing)
    add_output(listing)

    for action, summary in ACTIONS.items():
        command = helptext.command(
            commands,
            action,
            summary,
            f"{summary[0].upper()}{summary[1:]}. Recorded with your name (or the token's) and "
            "the reason on the rollout's timeline.",
            [
                f"signalbox rollout {action} 42 --reason 'ticket OPS-7'"
                + (" --full --wait" if action == "promote" else ""),
                f"signalbox rollout {action} 42 --wait --timeout 900",
            ],
            WAIT_CODES,
            WAITING,
        )
        command.add_argument("id", type=int, help="the rollout's id")
        command.add_argument("--reason", default="", help="recorded with your name")
        if action == "promote":
            command.add_argument("--full", action="store_true", help="skip all remaining steps")
        _waiting(command)


def _waiting(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--wait",
        action="store_true",
        help="stream progress until the rollout ends; exit with its outcome",
    )
    _timing(command, "with --wait")


def _timing(command: argparse.ArgumentParser, when: str) -> None:
    command.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help=f"{when}: give up after this long (exit 5, or 7 if Signalbox is unreachable "
        "then); 0: no limit",
    )
    command.add_argument(
        "--poll", type=float, default=2.0, metavar="SECONDS", help=f"{when}: seconds between looks"
    )


# -- commands ------------------------------------------------------------------------------------


def _start(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {
        "service": args.service,
        "environment": args.environment,
        "version": args.version,
    }
    if args.strategy:
        body["strategy"] = args.strategy
    if args.steps:
        try:
            body["steps"] = json.loads(args.steps)
        except ValueError as exc:
            raise Usage(f"--steps is not JSON: {exc}") from None
    for key, value in (
        ("idempotency_key", args.idempotency_key),
        ("reason", args.reason),
        ("freeze_override_reason", args.override_freeze),
    ):
        if value:
            body[key] = value
    if args.idempotency_key:
        # The same key returns the same rollout, so a start lost to the network is safe to
        # send again; without a key a retry could start a second rollout.
        rollout = patiently(
            lambda: client.post("rollouts", body),
            deadline=time.monotonic() + min(_limit(args), 120.0),
            say=_say_lines(args),
        )
    else:
        rollout = client.post("rollouts", body)
    print(
        f"rollout #{rollout['id']}: {rollout['service']} {rollout['from_version'] or '?'} → "
        f"{rollout['to_version']} in {rollout['environment']} ({rollout['strategy']}) "
        f"{rollout['url']}",
        file=out,
    )
    return follow(client, rollout["id"], args, out) if args.wait else OK


def _get(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.watch:
        return follow(client, args.id, args, out, watching=True)
    rollout = client.get(f"rollouts/{args.id}")
    if args.output != "table":
        dump(rollout, args.output, out)
    else:
        for text in detail(rollout):
            print(text, file=out)
    return ENDINGS.get(rollout["state"], OK)


def _list(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    path = with_query(
        "rollouts",
        service=args.service,
        environment=args.environment,
        team=args.team,
        state=args.state,
        active="true" if args.active else None,
    )
    rollouts = list(client.pages(path, chunk_size(args)))
    if args.output != "table":
        dump(rollouts, args.output, out)
        return OK
    rows = [
        [
            str(r["id"]),
            r["service"],
            r["environment"],
            f"{r['from_version'] or '?'} → {r['to_version']}",
            r["strategy"],
            r["state"],
            _weights(r) or "—",
            local_time(r["created_at"]),
            r["step"],
        ]
        for r in rollouts
    ]
    header = [
        "ID",
        "SERVICE",
        "ENV",
        "VERSION",
        "STRATEGY",
        "STATE",
        "NEW/STABLE",
        "CREATED",
        "STEP",
    ]
    print_table(rows, header, out, "no rollouts")
    return OK


def _act(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {"reason": args.reason} if args.reason else {}
    if getattr(args, "full", False):
        body["full"] = True
    rollout = client.post(f"rollouts/{args.id}/{args.command}", body)
    if rollout["id"] != args.id:
        print(f"started rollout #{rollout['id']} back to {rollout['to_version']}", file=out)
    print(line(rollout), file=out)
    return follow(client, rollout["id"], args, out) if args.wait else OK


COMMANDS: dict[str, Handler] = {
    "start": _start,
    "get": _get,
    "status": _get,
    "list": _list,
    **{action: _act for action in ACTIONS},
}


# -- following a rollout -------------------------------------------------------------------------


def _limit(args: argparse.Namespace) -> float:
    return float("inf") if args.timeout <= 0 else float(args.timeout)


def _say_lines(args: argparse.Namespace) -> Callable[[str], None]:
    err: TextIO = args.err

    def say(message: str) -> None:
        print(f"{now()} signalbox: {message}", file=err, flush=True)

    return say


def follow(
    client: Client,
    rollout_id: int,
    args: argparse.Namespace,
    out: TextIO,
    *,
    watching: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Follow the rollout until it ends; its ending is the exit code. Lines per change
    (--wait, or --watch when not a terminal), a redrawn view (--watch in a terminal), or a
    JSON/YAML document per change (--watch -o json|yaml)."""
    output = getattr(args, "output", "table") if watching else "table"
    view: View
    if output != "table":
        view = Documents(out, output)
    elif watching and out.isatty():
        view = Screen(out, rollout_id, args.poll)
    else:
        view = Lines(out)
    say = view.say if isinstance(view, Screen) else _say_lines(args)
    deadline = clock() + _limit(args)
    path = f"rollouts/{rollout_id}"
    try:
        while True:
            try:
                rollout = patiently(
                    lambda: client.get(path, timeout=_request_timeout(deadline, clock)),
                    deadline=deadline,
                    say=say,
                    clock=clock,
                )
            except GaveUp as exc:
                view.close()
                print(
                    f"signalbox: {exc}\nsignalbox: rollout #{rollout_id}'s outcome is unknown; "
                    f"it carries on without you (signalbox rollout get {rollout_id})",
                    file=args.err,
                )
                return UNREACHABLE
            view.show(rollout)
            if rollout["terminal"]:
                view.close()
                code = ENDINGS.get(rollout["state"], FAILED)
                if code != OK and output == "table":
                    print(
                        f"rollout #{rollout_id} {rollout['state'].replace('_', ' ')}: "
                        f"{rollout['message']}",
                        file=out,
                    )
                return code
            if clock() >= deadline:
                view.close()
                print(
                    f"rollout #{rollout_id} still {rollout['state']} after {args.timeout:g}s; "
                    f"it carries on (signalbox rollout get {rollout_id})",
                    file=out if output == "table" else args.err,
                )
                return TIMED_OUT
            time.sleep(min(args.poll, max(0.0, deadline - clock())))
    except KeyboardInterrupt:
        view.close()
        raise


def _request_timeout(deadline: float, clock: Callable[[], float]) -> float:
    """One request may take 30 s, but never much past the deadline."""
    return max(1.0, min(30.0, deadline - clock()))


class View:
    def show(self, rollout: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """The view is done (the terminal's cursor comes back)."""


class Lines(View):
    """A line per change of state, step or weights, and per new measurement: for logs."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last = ""
        self.seen: set[tuple[str, str]] = set()

    def show(self, rollout: dict[str, Any]) -> None:
        for run in rollout.get("analysis_runs", []):
            for m in run["measurements"]:
                key = (m["metric"], m["measured_at"])
                if key not in self.seen:
                    self.seen.add(key)
                    print(f"{now()}   {_measurement(m)}", file=self.out)
        text = line(rollout)
        if text != self.last:
            print(f"{now()} {text}", file=self.out, flush=True)
            self.last = text


class Documents(View):
    """One JSON line (or YAML document) each time the rollout changes: for scripts."""

    def __init__(self, out: TextIO, fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self.last: str | None = None

    def show(self, rollout: dict[str, Any]) -> None:
        text = json.dumps(rollout, sort_keys=True)
        if text != self.last:
            self.last = text
            dump(rollout, self.fmt, self.out, stream=True)
            self.out.flush()


class Screen(View):
    """The `get` view, redrawn in place in a terminal (ANSI: up N lines, clear below), as
    `kubectl argo rollouts get --watch` does; lines are cut to the terminal's width so the
    count of lines to go back up stays true."""

    def __init__(self, out: TextIO, rollout_id: int, poll: float) -> None:
        self.out = out
        self.rollout_id = rollout_id
        self.poll = poll
        self.drawn = 0
        self.body: list[str] = []
        self.status = ""
        self.out.write("\x1b[?25l")  # hide the cursor while redrawing

    def show(self, rollout: dict[str, Any]) -> None:
        self.body = detail(rollout)
        self.status = ""
        self._draw()

    def say(self, message: str) -> None:
        self.status = f"⚠ {message}"
        self._draw()

    def _draw(self) -> None:
        width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
        head = f"signalbox rollout get {self.rollout_id} --watch · every {self.poll:g}s · {now()}"
        frame = [head, "", *self.body] + ([self.status] if self.status else [])
        text = "".join(f"{row[:width]}\n" for row in frame)
        up = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""
        self.out.write(up + text)
        self.out.flush()
        self.drawn = len(frame)

    def close(self) -> None:
        self.out.write("\x1b[?25h")
        self.out.flush()


# -- text ----------------------------------------------------------------------------------------


def _weights(rollout: dict[str, Any]) -> str:
    if rollout.get("applied_weight") is None:
        return ""
    return f"{rollout['applied_weight']:g}% new / {rollout['stable_weight']:g}% stable"


def line(rollout: dict[str, Any]) -> str:
    weights = _weights(rollout)
    weights = f" · {weights}" if weights else ""
    message = f" · {rollout['message']}" if rollout.get("message") else ""
    return (
        f"#{rollout['id']} {rollout['service']} {rollout['to_version']} in "
        f"{rollout['environment']}: {rollout['state'].replace('_', ' ')} · step "
        f"{rollout['step']}{weights}{message}"
    )


def _measurement(m: dict[str, Any]) -> str:
    value = "—" if m["value"] is None else f"{m['value']:g}"
    return (
        f"{m['metric']}: {m['verdict']} (value {value}, threshold {m['threshold'] or '—'}): "
        f"{m['reason']}"
    )


STEP_MARKS = {"done": "✔", "running": "▸", "skipped": "↷", "failed": "✘"}


def detail(rollout: dict[str, Any]) -> list[str]:
    """The rollout as `get` shows it: a few labelled lines, the steps, the last analysis."""
    rows = [
        f"Rollout:   #{rollout['id']} {rollout['service']} {rollout['from_version'] or '?'} → "
        f"{rollout['to_version']} in {rollout['environment']} ({rollout['strategy']})",
        f"State:     {rollout['state'].replace('_', ' ')} · step {rollout['step']}",
    ]
    if _weights(rollout):
        rows.append(f"Traffic:   {_weights(rollout)}")
    if rollout.get("message"):
        rows.append(f"Message:   {rollout['message']}")
    started = f"Started:   {local_time(rollout['created_at'])} by {rollout['actor_label']}"
    rows.append(started + (f" ({rollout['reason']})" if rollout.get("reason") else ""))
    if rollout.get("finished_at"):
        rows.append(f"Finished:  {local_time(rollout['finished_at'])}")
    rows.append(f"Page:      {rollout['url']}")
    runs = {run["index"]: run for run in rollout.get("step_runs", [])}
    if rollout.get("steps"):
        rows.append("Steps:")
        for index, spec in enumerate(rollout["steps"]):
            run = runs.get(index)
            outcome = run["outcome"] if run else ""
            mark = STEP_MARKS.get(outcome, "·")
            text = json.dumps(spec, separators=(",", ":"))
            suffix = f"  {outcome}" if outcome else ""
            if run and run.get("message"):
                suffix += f": {run['message']}"
            rows.append(f"  {mark} {index + 1}. {text}{suffix}")
    for run in rollout.get("analysis_runs", [])[-1:]:
        rows.append(
            f"Analysis (step {run['step_index'] + 1}): {run['state']}"
            + (f": {run['message']}" if run.get("message") else "")
        )
        for m in run["measurements"][-10:]:
            rows.append(f"  {local_time(m['measured_at'])} {_measurement(m)}")
    return rows


__all__ = ["COMMANDS", "INTERRUPTED", "add_parser", "follow", "line"]
