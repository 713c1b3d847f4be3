"""`signalbox scale list|show|set|pause|resume|restart|history`: scaling groups from a terminal.

A group is named by its service and environment, as on the dashboard and in Slack
(`signalbox scale set search production 4`). Reading needs a token with `read`; acting
(set, pause, resume, restart) needs `deploy` on the service's team.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from . import helptext
from .client import Client, GaveUp, patiently, with_query
from .exits import (
    FAILED,
    INTERRUPTED,
    OK,
    REFUSED,
    TIMED_OUT,
    UNREACHABLE,
    USAGE,
    Usage,
)
from .output import add_chunk_size, add_output, chunk_size, dump

FOLLOW_CODES = (
    OK,
    USAGE,
    (FAILED, "a launch failed on the way (the group goes on replacing it)"),
    (TIMED_OUT, "not settled when --timeout ran out (the group carries on)"),
    REFUSED,
    UNREACHABLE,
    INTERRUPTED,
)
MOVING = {
    "launch": ("launching", "waiting_healthy"),
    "termination": ("draining", "confirming", "awaiting_ready", "stopping"),
}
WAITING = (
    "With --wait, network errors, timeouts, 5xx and 429 answers are retried with exponential "
    "backoff and jitter until --timeout."
)

Handler = Callable[[Client, argparse.Namespace, TextIO], int]


def add_parser(topics: Any) -> None:
    scale = helptext.topic(
        topics,
        "scale",
        "show, set, pause and restart scaling groups",
        "A scaling group keeps a service's instance count in one environment between its "
        "min and max, from its metrics. Groups are named by service and environment, as on "
        "the dashboard and in Slack. Reading needs `read`; acting needs `deploy` on the "
        "service's team.",
    )
    commands = scale.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = helptext.command(
        commands,
        "list",
        "list scaling groups (every page)",
        "List scaling groups you can see, following every page; filters combine.",
        ["signalbox scale list", "signalbox scale list --team search -o json"],
    )
    listing.add_argument("--service", help="the service's slug")
    listing.add_argument("--env", dest="environment", help="the environment's slug")
    listing.add_argument("--team", help="the owning team's slug")
    add_chunk_size(listing)
    add_output(listing)

    show = helptext.command(
        commands,
        "show",
        "a group: bounds, metrics, instances, last decision",
        "Show a group: its bounds, what runs now (in service, launching, draining), "
        "autoscaling on or paused and why, each metric with its target or steps, and the "
        "last decision with the arithmetic that made it.",
        [
            "signalbox scale show search production",
            "signalbox scale show search production -o yaml",
        ],
    )
    _group(show)
    add_output(show, legacy_json=True)

    setting = helptext.command(
        commands,
        "set",
        "set the instance count by hand (autoscaling pauses until resumed)",
        "Set the count by hand, within the group's min and max; autoscaling pauses (or its "
        "next tick would undo you) until `resume`. With --wait it follows each launch and "
        "each termination (with its drain report) until that many instances are in service.",
        ['signalbox scale set search production 4 --reason "launch day" --wait'],
        FOLLOW_CODES,
        WAITING,
    )
    _group(setting)
    setting.add_argument("count", help="the number of instances, within the group's min and max")
    setting.add_argument("--reason", default="", help="recorded with your name")
    _waiting(setting, "until that many instances are in service and none is launching or leaving")

    pause = helptext.command(
        commands,
        "pause",
        "pause autoscaling (the count stays)",
        "Pause autoscaling: the count stays where it is until `resume`.",
        ['signalbox scale pause search production --reason "load test"'],
    )
    _group(pause)
    pause.add_argument("--reason", default="", help="shown on the group's page")

    resume = helptext.command(
        commands,
        "resume",
        "resume autoscaling",
        "Resume autoscaling from the group's metrics.",
        ["signalbox scale resume search production"],
    )
    _group(resume)

    restart = helptext.command(
        commands,
        "restart",
        "rolling restart: replace every instance one by one, health-gated and drained",
        "Replace every instance one by one through the same health-gated launch and verified "
        "drain as scaling; --wait returns when the last old instance has gone.",
        ["signalbox scale restart search production --wait --timeout 1800"],
        FOLLOW_CODES,
        WAITING,
    )
    _group(restart)
    restart.add_argument("--reason", default="", help="recorded with your name")
    _waiting(restart, "until every instance has been replaced")

    history = helptext.command(
        commands,
        "history",
        "decisions, launches and terminations (drain reports), newest first",
        "What the group did, newest first: decisions (with their arithmetic), launches and "
        "terminations (with their drain reports).",
        [
            "signalbox scale history search production --limit 50",
            "signalbox scale history search production -o json",
        ],
    )
    _group(history)
    history.add_argument("--limit", type=int, default=20, help="lines of each kind (max 100)")
    add_output(history)


def _group(command: argparse.ArgumentParser) -> None:
    command.add_argument("service", help="the service's slug")
    command.add_argument("environment", metavar="env", help="the environment's slug")


def _waiting(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument("--wait", action="store_true", help=f"follow the group {what}")
    command.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="with --wait: give up after this long (exit 5, or 7 if Signalbox is unreachable then)",
    )
    command.add_argument(
        "--poll",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="with --wait: seconds between looks",
    )


# -- finding the group -------------------------------------------------------------------------


def find_group(client: Client, service: str, environment: str) -> dict[str, Any]:
    page = client.get(with_query("scaling/groups", service=service, environment=environment))
    if not page["results"]:
        raise Usage(
            f"{service} has no scaling group in {environment} "
            "(signalbox scale list shows those you can see)"
        )
    group: dict[str, Any] = page["results"][0]
    return group


# -- commands ------------------------------------------------------------------------------------


def _list(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    path = with_query(
        "scaling/groups", service=args.service, environment=args.environment, team=args.team
    )
    groups = list(client.pages(path, chunk_size(args)))
    if args.output != "table":
        dump(groups, args.output, out)
        return OK
    for group in groups:
        print(line(group), file=out)
    if not groups:
        print("no scaling groups", file=out)
    return OK


def _show(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    group = find_group(client, args.service, args.environment)
    decisions = client.get(f"scaling/groups/{group['id']}/decisions?page_size=1")["results"]
    if args.output != "table":
        dump({**group, "last_decision": (decisions or [None])[0]}, args.output, out)
        return OK
    print(line(group), file=out)
    print(
        f"  driver {group['driver']} · sync every {group['sync_seconds']}s · tolerance "
        f"{group['tolerance']:g} · scale-down stabilised over "
        f"{group['down_stabilization_seconds']}s",
        file=out,
    )
    for metric in group["metrics"]:
        print(f"  metric {_metric(metric)}", file=out)
    if group["restart_every_seconds"]:
        print(
            f"  rolling restart every {_duration(group['restart_every_seconds'])}, next "
            f"{_when(group['next_restart_at'])}",
            file=out,
        )
    if decisions:
        print("last decision:", file=out)
        for text in _decision_lines(decisions[0]):
            print(f"  {text}", file=out)
    return OK


def _set(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    try:
        count = int(args.count)
    except ValueError:
        raise Usage(f"the count must be a whole number of instances (got {args.count!r})") from None
    if count < 0:
        raise Usage(f"the count must be 0 or more (got {count})")
    group = find_group(client, args.service, args.environment)
    body: dict[str, Any] = {"desired": count}
    if args.reason:
        body["reason"] = args.reason
    group = client.post(f"scaling/groups/{group['id']}/desired", body)
    print(line(group), file=out)
    return _follow(client, group, args, out, _settled) if args.wait else OK


def _pause(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    group = find_group(client, args.service, args.environment)
    body = {"reason": args.reason} if args.reason else {}
    print(line(client.post(f"scaling/groups/{group['id']}/pause", body)), file=out)
    return OK


def _resume(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    group = find_group(client, args.service, args.environment)
    print(line(client.post(f"scaling/groups/{group['id']}/resume", {})), file=out)
    return OK


def _restart(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    group = find_group(client, args.service, args.environment)
    body = {"reason": args.reason} if args.reason else {}
    group = client.post(f"scaling/groups/{group['id']}/restart", body)
    print(line(group), file=out)
    return _follow(client, group, args, out, _restarted) if args.wait else OK


def _history(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if not 1 <= args.limit <= 100:
        raise Usage(f"--limit must be from 1 to 100 (got {args.limit})")
    group = find_group(client, args.service, args.environment)
    rows: list[tuple[str, str]] = []
    base = f"scaling/groups/{group['id']}"
    decisions = client.get(f"{base}/decisions?page_size={args.limit}")["results"]
    launches = client.get(f"{base}/launches?page_size={args.limit}")["results"]
    terminations = client.get(f"{base}/terminations?page_size={args.limit}")["results"]
    if args.output != "table":
        history = {"decisions": decisions, "launches": launches, "terminations": terminations}
        dump({"group": group, **history}, args.output, out)
        return OK
    for decision in decisions:
        rows.append((decision["at"], "\n    ".join(_decision_lines(decision))))
    for launch in launches:
        rows.append((launch["started_at"], _launch_line(launch)))
    for termination in terminations:
        rows.append((termination["started_at"], _termination_line(termination)))
    if not rows:
        print(f"{_name(group)}: nothing has happened yet", file=out)
    for at, text in sorted(rows, key=lambda row: row[0], reverse=True):
        print(f"{_when(at)}  {text}", file=out)
    return OK


COMMANDS: dict[str, Handler] = {
    "list": _list,
    "show": _show,
    "set": _set,
    "pause": _pause,
    "resume": _resume,
    "restart": _restart,
    "history": _history,
}


# -- following a change ---------------------------------------------------------------------------


def _settled(group: dict[str, Any]) -> bool:
    counts = group["instances"]
    return bool(
        counts["in_service"] == group["desired"]
        and counts["launching"] == 0
        and counts["draining"] == 0
    )


def _restarted(group: dict[str, Any]) -> bool:
    return group["restarting_since"] is None and _settled(group)


def _follow(
    client: Client,
    group: dict[str, Any],
    args: argparse.Namespace,
    out: TextIO,
    done: Callable[[dict[str, Any]], bool],
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Print each launch and termination as it moves, until `done(group)`; exit 4 if a launch
    failed on the way (the group carries on replacing it), 5 at the timeout, 7 when Signalbox
    stayed unreachable (retried with backoff) until the timeout."""
    deadline = clock() + args.timeout
    base = f"scaling/groups/{group['id']}"
    err: TextIO = args.err

    def say(message: str) -> None:
        print(f"{_now()} signalbox: {message}", file=err, flush=True)

    def get(path: str) -> Any:
        timeout = max(1.0, min(30.0, deadline - clock()))
        return patiently(
            lambda: client.get(path, timeout=timeout), deadline=deadline, say=say, clock=clock
        )

    seen: dict[str, str] = {}
    failed = False
    first = True
    while True:
        try:
            looks = [
                ("launch", get(f"{base}/launches?page_size=20")["results"]),
                ("termination", get(f"{base}/terminations?page_size=20")["results"]),
            ]
        except GaveUp as exc:
            print(
                f"signalbox: {exc}\nsignalbox: {_name(group)} carries on without you "
                f"(signalbox scale show {_name(group, ' ')})",
                file=err,
            )
            return UNREACHABLE
        for kind, rows in looks:
            for row in reversed(rows):
                key = f"{kind}:{row['id']}"
                text = _launch_line(row) if kind == "launch" else _termination_line(row)
                if first:
                    seen[key] = text  # what was there before: not news
                elif seen.get(key) != text:
                    seen[key] = text
                    print(f"{_now()}   {text}", file=out)
                    failed = failed or (kind == "launch" and row["state"] == "failed")
        first_look, first = first, False
        # The counts can say "settled" while a termination is still stopping: done only
        # once no launch or termination is still on its way.
        moving = any(row["state"] in MOVING[kind] for kind, rows in looks for row in rows)
        if not first_look and not moving and done(group):
            print(f"{_now()} {line(group)}", file=out)
            return FAILED if failed else OK
        if clock() >= deadline:
            print(
                f"{_name(group)} not settled after {args.timeout:g}s: {_counts(group)}; it "
                f"carries on (signalbox scale show {_name(group, ' ')})",
                file=out,
            )
            return TIMED_OUT
        time.sleep(0 if first_look else args.poll)
        try:
            group = get(base)
        except GaveUp as exc:
            print(
                f"signalbox: {exc}\nsignalbox: {_name(group)} carries on without you "
                f"(signalbox scale show {_name(group, ' ')})",
                file=err,
            )
            return UNREACHABLE


# -- lines ---------------------------------------------------------------------------------------


def line(group: dict[str, Any]) -> str:
    paused = group["paused_reason"] or "no reason given"
    mode = "autoscaling" if group["enabled"] else f"paused ({paused})"
    restarting = ""
    if group.get("restarting_since"):
        restarting = f" · rolling restart since {_when(group['restarting_since'])}"
    return (
        f"{_name(group)}: desired {group['desired']} ({group['min_instances']}.."
        f"{group['max_instances']}) · {_counts(group)} · {mode}{restarting}"
    )


def _name(group: dict[str, Any], between: str = "/") -> str:
    return f"{group['service']}{between}{group['environment']}"


def _counts(group: dict[str, Any]) -> str:
    counts = group["instances"]
    parts = [f"{counts['in_service']} in service"]
    if counts["launching"]:
        parts.append(f"{counts['launching']} launching")
    if counts["draining"]:
        parts.append(f"{counts['draining']} draining")
    return ", ".join(parts)


def _metric(metric: dict[str, Any]) -> str:
    name = metric["source"] + (f" {metric['name']}" if metric["name"] else "")
    if metric["steps"]:
        steps = ", ".join(
            f"[{_bound(s['lower'], '-inf')}, {_bound(s['upper'], 'inf')}) "
            f"{s['change']:+d}{'%' if s['kind'] == 'percent' else ''}"
            for s in metric["steps"]
        )
        return f"{name}: steps {steps}"
    return f"{name}: target {metric['target']:g} (over {metric['window_seconds']}s)"


def _bound(value: float | None, none: str) -> str:
    return none if value is None else f"{value:g}"


def _decision_lines(decision: dict[str, Any]) -> list[str]:
    change = f"{decision['current']} -> {decision['desired']}"
    head = f"decided {change} ({decision['reason'].replace('_', ' ')})"
    if decision["held_by"]:
        head += f"; held by {decision['held_by']}"
    return [head, *[str(step) for step in decision["steps"] if step != decision["held_by"]]]


def _launch_line(launch: dict[str, Any]) -> str:
    text = f"launch {launch['driver_ref'] or '#' + str(launch['id'])}: {launch['state']}"
    took = _seconds(launch["started_at"], launch["in_service_at"])
    if took is not None:
        text += f", taking traffic {took:.1f}s after launch"
    if launch["message"]:
        text += f" ({launch['message']})"
    return text


def _termination_line(termination: dict[str, Any]) -> str:
    report = termination["report"]
    text = f"termination of {termination['instance_label']}: {termination['state']}"
    if termination["chosen_because"]:
        text += f", chosen because {termination['chosen_because']}"
    figures = []
    if report["seconds_to_stop_routing"] is not None:
        figures.append(f"routing stopped in {report['seconds_to_stop_routing']:.1f}s")
    if report["requests_during_drain"] is not None:
        figures.append(f"{report['requests_during_drain']} requests during the drain")
    if report["errors_during_drain"] is not None:
        figures.append(f"{report['errors_during_drain']} 5xx")
    if report["ending"]:
        figures.append(f"ended {report['ending'].replace('_', ' ')}")
    if report["seconds_total"] is not None:
        figures.append(f"{report['seconds_total']:.1f}s in all")
    return text + (f" · {', '.join(figures)}" if figures else "")


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (_parse(end) - _parse(start)).total_seconds()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _when(value: str | None) -> str:
    if not value:
        return "—"
    return _parse(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m"


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S")
