"""`signalbox rollout start|status|list|pause|resume|promote|abort|retry|rollback` and
`signalbox scale list|show|set|pause|resume|restart|history` (scale.py).

Exit codes (docs/cli.md): 0 success, 1 rolled back, 2 bad usage or configuration,
3 aborted, 4 failed (progress deadline), 5 still running when --timeout ran out,
6 refused by the API (bad input, permission, conflict, freeze), 7 Signalbox unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TextIO

from . import scale
from .client import ApiError, Client, Unreachable, with_query
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

ENDINGS = {"succeeded": OK, "rolled_back": ROLLED_BACK, "aborted": ABORTED, "failed": FAILED}
ACTIONS = ("pause", "resume", "promote", "abort", "retry", "rollback")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signalbox",
        description="Start and steer Signalbox rollouts, and steer scaling groups. "
        "Set SIGNALBOX_URL and SIGNALBOX_TOKEN.",
        epilog="Exit codes: 0 success, 1 rolled back, 2 usage, 3 aborted, 4 failed, "
        "5 timed out waiting, 6 refused by the API, 7 Signalbox unreachable.",
    )
    parser.add_argument("--url", help="Signalbox base URL (default: $SIGNALBOX_URL)")
    parser.add_argument("--token", help="API token (default: $SIGNALBOX_TOKEN)")
    topics = parser.add_subparsers(dest="topic", required=True, metavar="rollout|scale")
    rollout = topics.add_parser("rollout", help="start, watch and act on rollouts")
    commands = rollout.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="start a rollout (idempotent with a key)")
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

    status = commands.add_parser("status", help="show a rollout")
    status.add_argument("id", type=int)
    status.add_argument("--json", action="store_true", help="print the API's JSON")

    listing = commands.add_parser("list", help="list rollouts")
    listing.add_argument("--service")
    listing.add_argument("--env", dest="environment")
    listing.add_argument("--active", action="store_true", help="only rollouts still running")

    for action in ACTIONS:
        command = commands.add_parser(action, help=f"{action} a rollout")
        command.add_argument("id", type=int)
        command.add_argument("--reason", default="", help="recorded with your name")
        if action == "promote":
            command.add_argument("--full", action="store_true", help="skip all remaining steps")
        _waiting(command)
    scale.add_parser(topics)
    return parser


def _waiting(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--wait",
        action="store_true",
        help="stream progress until the rollout ends; exit with its outcome",
    )
    command.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="with --wait: give up after this many seconds (exit 5)",
    )
    command.add_argument(
        "--poll", type=float, default=2.0, help="with --wait: seconds between looks"
    )


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage and the problem
        return int(exc.code or 0)
    try:
        client = _client(args)
        if args.topic == "scale":
            return scale.COMMANDS[args.command](client, args, out)
        return COMMANDS.get(args.command, _act)(client, args, out)
    except Usage as exc:
        print(f"signalbox: {exc}", file=err)
        return USAGE
    except ApiError as exc:
        print(f"signalbox: refused: {exc}", file=err)
        return REFUSED
    except Unreachable as exc:
        print(f"signalbox: {exc}", file=err)
        return UNREACHABLE
    except KeyboardInterrupt:
        what = "the group" if args.topic == "scale" else "the rollout"
        print(f"signalbox: stopped watching; {what} carries on without you", file=err)
        return INTERRUPTED


def _client(args: argparse.Namespace) -> Client:
    url = args.url or os.environ.get("SIGNALBOX_URL", "")
    token = args.token or os.environ.get("SIGNALBOX_TOKEN", "")
    if not url:
        raise Usage("set SIGNALBOX_URL (e.g. https://signalbox.example.com) or pass --url")
    if not url.startswith(("http://", "https://")):
        raise Usage(f"SIGNALBOX_URL must start with http:// or https:// (got {url!r})")
    if not token:
        raise Usage(
            "set SIGNALBOX_TOKEN to a token with the read and deploy scopes "
            "(manage.py issue_token --team TEAM --scopes read,deploy) or pass --token"
        )
    return Client(url, token)


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
    rollout = client.post("rollouts", body)
    print(
        f"rollout #{rollout['id']}: {rollout['service']} {rollout['from_version'] or '?'} → "
        f"{rollout['to_version']} in {rollout['environment']} ({rollout['strategy']}) "
        f"{rollout['url']}",
        file=out,
    )
    return _watch(client, rollout["id"], args, out) if args.wait else OK


def _status(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    rollout = client.get(f"rollouts/{args.id}")
    if args.json:
        print(json.dumps(rollout, indent=2), file=out)
        return OK
    print(_line(rollout), file=out)
    for run in rollout.get("analysis_runs", [])[-1:]:
        for m in run["measurements"]:
            print(f"  {m['metric']}: {m['verdict']} ({m['reason']})", file=out)
    return ENDINGS.get(rollout["state"], OK)


def _list(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    page = client.get(
        with_query(
            "rollouts",
            service=args.service,
            environment=args.environment,
            active="true" if args.active else None,
        )
    )
    for rollout in page["results"]:
        print(_line(rollout), file=out)
    if not page["results"]:
        print("no rollouts", file=out)
    return OK


def _act(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {"reason": args.reason} if args.reason else {}
    if getattr(args, "full", False):
        body["full"] = True
    rollout = client.post(f"rollouts/{args.id}/{args.command}", body)
    if rollout["id"] != args.id:
        print(f"started rollout #{rollout['id']} back to {rollout['to_version']}", file=out)
    print(_line(rollout), file=out)
    return _watch(client, rollout["id"], args, out) if args.wait else OK


def _watch(
    client: Client,
    rollout_id: int,
    args: argparse.Namespace,
    out: TextIO,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Print each change until the rollout ends; its ending is the exit code."""
    deadline = clock() + args.timeout
    last = ""
    seen: set[tuple[str, str]] = set()
    while True:
        rollout = client.get(f"rollouts/{rollout_id}")
        for run in rollout.get("analysis_runs", []):
            for m in run["measurements"]:
                key = (m["metric"], m["measured_at"])
                if key not in seen:
                    seen.add(key)
                    value = "—" if m["value"] is None else f"{m['value']:g}"
                    print(
                        f"{_now()}   {m['metric']}: {m['verdict']} (value {value}, "
                        f"threshold {m['threshold'] or '—'}): {m['reason']}",
                        file=out,
                    )
        line = _line(rollout)
        if line != last:
            print(f"{_now()} {line}", file=out)
            last = line
        if rollout["terminal"]:
            code = ENDINGS.get(rollout["state"], FAILED)
            if code != OK:
                print(
                    f"rollout #{rollout_id} {rollout['state'].replace('_', ' ')}: "
                    f"{rollout['message']}",
                    file=out,
                )
            return code
        if clock() >= deadline:
            print(
                f"rollout #{rollout_id} still {rollout['state']} after {args.timeout:g}s; "
                "it carries on (signalbox rollout status "
                f"{rollout_id})",
                file=out,
            )
            return TIMED_OUT
        time.sleep(args.poll)


def _line(rollout: dict[str, Any]) -> str:
    weights = ""
    if rollout.get("applied_weight") is not None:
        weights = f" · {rollout['applied_weight']:g}% new / {rollout['stable_weight']:g}% stable"
    message = f" · {rollout['message']}" if rollout.get("message") else ""
    return (
        f"#{rollout['id']} {rollout['service']} {rollout['to_version']} in "
        f"{rollout['environment']}: {rollout['state'].replace('_', ' ')} · step "
        f"{rollout['step']}{weights}{message}"
    )


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S")


COMMANDS: dict[str, Callable[[Client, argparse.Namespace, TextIO], int]] = {
    "start": _start,
    "status": _status,
    "list": _list,
}
