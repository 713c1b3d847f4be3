"""`signalbox silence add|expire|list` and `signalbox incident list|ack|resolve`, as amtool
users expect: matchers written `label=value`, `label!=value`, `label=~regex`, `label!~regex`."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from . import helptext
from .client import ApiError, Client, with_query
from .exits import OK, REFUSED, Usage
from .output import add_chunk_size, add_output, chunk_size, dump, local_time, print_table

Handler = Callable[[Client, argparse.Namespace, TextIO], int]

LABELS = ("team", "service", "environment", "rule", "kind", "severity", "subject")
# Longest first: `=~` is not `=` followed by `~`.
OPS = ("!~", "=~", "!=", "=")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
SEVERITIES = ("page", "ticket", "info")
STATES = ("pending", "firing", "acknowledged", "resolved")


def add_parsers(topics: Any) -> None:
    _silence_parser(topics)
    _incident_parser(topics)


def _silence_parser(topics: Any) -> None:
    silence = helptext.topic(
        topics,
        "silence",
        "mute a team's notifications for a while (add, expire, list)",
        "Silences mute the notifications of a team's incidents that match every matcher, for "
        "a time range; the incidents still open, and resolves are always delivered. As in "
        "amtool, a matcher is LABEL=VALUE, LABEL!=VALUE, LABEL=~REGEX or LABEL!~REGEX "
        "(regexes match the whole value); labels: " + ", ".join(LABELS) + ".",
    )
    commands = silence.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = helptext.command(
        commands,
        "add",
        "silence matching incidents of a team",
        "Create a silence for TEAM's incidents matching every MATCHER, from now (or --start) "
        "for --duration (or until --end). Prints the silence; -q prints only its id, for "
        "scripts that expire it afterwards. Needs `deploy` on the team.",
        [
            "signalbox silence add --team payments service=checkout environment=production "
            "--duration 2h --comment 'DB migration, OPS-12'",
            "signalbox silence add --team payments 'rule=~disk.*' severity!=page "
            "--end 2026-12-24T08:00:00Z --comment 'holiday freeze'",
            "ID=$(signalbox silence add -q --team payments service=checkout -d 30m "
            "-c deploy) && ... && signalbox silence expire $ID",
        ],
    )
    add.add_argument(
        "matchers", nargs="*", metavar="MATCHER", help="LABEL OP VALUE, e.g. service=checkout"
    )
    add.add_argument("--team", required=True, help="the team whose incidents are muted")
    add.add_argument("-c", "--comment", required=True, help="why (a ticket, a reason); required")
    add.add_argument(
        "-d",
        "--duration",
        default="1h",
        help="how long: 90m, 2h, 1h30m, 1d (default 1h; ignored with --end)",
    )
    add.add_argument("--start", help="when it starts (ISO 8601, default now)")
    add.add_argument("--end", help="when it ends (ISO 8601); instead of --duration")
    add.add_argument("-q", "--quiet", action="store_true", help="print only the silence's id")
    add_output(add)

    expire = helptext.command(
        commands,
        "expire",
        "end silences now",
        "Expire one or more silences now; notifications of matching incidents resume. "
        "Refused (6) for a silence that has already expired.",
        ["signalbox silence expire 12", "signalbox silence expire 12 13 14"],
    )
    expire.add_argument("ids", nargs="+", type=int, metavar="ID")

    listing = helptext.command(
        commands,
        "list",
        "list silences (active ones unless --all or --expired)",
        "List silences, following every page: by default those muting now; --expired the "
        "others (ended, expired or not started yet), --all both.",
        ["signalbox silence list", "signalbox silence list --team payments --all -o json"],
    )
    listing.add_argument("--team", help="the team's slug")
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="active and inactive")
    which.add_argument("--expired", action="store_true", help="only those not muting now")
    add_chunk_size(listing)
    add_output(listing)


def _incident_parser(topics: Any) -> None:
    incident = helptext.topic(
        topics,
        "incident",
        "list, acknowledge and resolve incidents",
        "Incidents open when an alert rule's condition holds (a service down, a rollback, a "
        "circuit open, an SLO burning). Acknowledging stops escalation; resolving closes it "
        "and notifies its channels.",
    )
    commands = incident.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = helptext.command(
        commands,
        "list",
        "list incidents (open ones unless --state)",
        "List incidents, newest first, following every page: by default the open ones "
        "(pending, firing, acknowledged).",
        [
            "signalbox incident list",
            "signalbox incident list --team payments --severity page",
            "signalbox incident list --state resolved --service checkout -o yaml",
        ],
    )
    listing.add_argument("--state", choices=[*STATES, "all"], help="default: the open states")
    listing.add_argument("--severity", choices=SEVERITIES)
    listing.add_argument("--team", help="the owning team's slug")
    listing.add_argument("--service", help="the service's slug")
    listing.add_argument("--env", dest="environment", help="the environment's slug")
    add_chunk_size(listing)
    add_output(listing)

    for name, summary, aliases in (
        ("ack", "acknowledge firing incidents (stops escalation)", ("acknowledge",)),
        ("resolve", "resolve incidents (notifies the channels)", ()),
    ):
        command = helptext.command(
            commands,
            name,
            summary,
            f"{summary[0].upper()}{summary[1:]}, recorded with your name on each incident's "
            "timeline. Needs `deploy` on the owning team. Each id is tried; the exit code is "
            "6 if any was refused.",
            [f"signalbox incident {name} 31", f"signalbox incident {name} 31 32"],
            aliases=aliases,
        )
        command.add_argument("ids", nargs="+", type=int, metavar="ID")
        add_output(command)


# -- matchers and times --------------------------------------------------------------------------


def parse_matcher(text: str) -> dict[str, str]:
    """`service=checkout` -> {"label": "service", "op": "=", "value": "checkout"}."""
    positions = [(text.find(op), op) for op in OPS if op in text]
    if not positions:
        raise Usage(
            f"matcher {text!r} has no operator: write LABEL=VALUE, LABEL!=VALUE, "
            "LABEL=~REGEX or LABEL!~REGEX"
        )
    # The first operator in the text; at one position the longest (`=~` before `=`).
    index, op = min(positions, key=lambda found: (found[0], -len(found[1])))
    label, value = text[:index].strip(), text[index + len(op) :]
    if label not in LABELS:
        raise Usage(f"matcher {text!r}: the label must be one of {', '.join(LABELS)}")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return {"label": label, "op": op, "value": value}


def parse_duration(text: str) -> timedelta:
    """`90m`, `2h`, `1h30m`, `1d`, `1w` (amtool's forms)."""
    raw = text.strip().lower()
    parts = _DURATION.findall(raw)
    if not raw or "".join(n + u for n, u in parts) != raw:
        raise Usage(f"--duration {text!r}: write it like 30m, 2h, 1h30m or 1d")
    seconds = sum(float(n) * _UNIT[u] for n, u in parts)
    if seconds <= 0:
        raise Usage(f"--duration {text!r} must be more than zero")
    return timedelta(seconds=seconds)


def parse_when(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Usage(
            f"{option} {text!r} is not an ISO 8601 time (e.g. 2026-12-24T08:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.astimezone()


# -- silences ------------------------------------------------------------------------------------


def _silence_add(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    matchers = [parse_matcher(text) for text in args.matchers]
    if not args.comment.strip():
        raise Usage("--comment must say why (a ticket, a reason)")
    starts = parse_when(args.start, "--start") if args.start else datetime.now(UTC)
    ends = parse_when(args.end, "--end") if args.end else starts + parse_duration(args.duration)
    body: dict[str, Any] = {
        "team": args.team,
        "matchers": matchers,
        "ends_at": ends.isoformat(),
        "comment": args.comment,
    }
    if args.start:
        body["starts_at"] = starts.isoformat()
    silence = client.post("alerts/silences", body)
    if args.quiet:
        print(silence["id"], file=out)
    elif args.output != "table":
        dump(silence, args.output, out)
    else:
        print(
            f"silence #{silence['id']} for {silence['team']}: {_matchers(silence)} until "
            f"{local_time(silence['ends_at'])}",
            file=out,
        )
    return OK


def _silence_expire(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    code = OK
    for silence_id in args.ids:
        try:
            client.delete(f"alerts/silences/{silence_id}")
        except ApiError as exc:
            print(f"signalbox: refused: silence {silence_id}: {exc}", file=args.err)
            code = REFUSED
            continue
        print(f"silence #{silence_id} expired", file=out)
    return code


def _silence_list(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    active = None if args.all else ("false" if args.expired else "true")
    path = with_query("alerts/silences", team=args.team, active=active)
    silences = list(client.pages(path, chunk_size(args)))
    if args.output != "table":
        dump(silences, args.output, out)
        return OK
    rows = [
        [
            str(s["id"]),
            s["team"],
            "active" if s["active"] else ("expired" if s["expired_at"] else "inactive"),
            _matchers(s),
            local_time(s["starts_at"]),
            local_time(s["expired_at"] or s["ends_at"]),
            s["created_by"],
            s["comment"].splitlines()[0] if s["comment"] else "",
        ]
        for s in silences
    ]
    header = ["ID", "TEAM", "STATE", "MATCHERS", "STARTS", "ENDS", "CREATED BY", "COMMENT"]
    print_table(rows, header, out, "no silences")
    return OK


def _matchers(silence: dict[str, Any]) -> str:
    found = [f"{m['label']}{m['op']}{m['value']}" for m in silence["matchers"]]
    return " ".join(found) or "(every incident of the team)"


# -- incidents -----------------------------------------------------------------------------------


def _incident_list(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.state == "all":
        states: list[str | None] = [None]
    elif args.state:
        states = [args.state]
    else:
        states = ["pending", "firing", "acknowledged"]
    incidents: list[dict[str, Any]] = []
    for state in states:
        path = with_query(
            "alerts/incidents",
            state=state,
            severity=args.severity,
            team=args.team,
            service=args.service,
            environment=args.environment,
        )
        incidents.extend(client.pages(path, chunk_size(args)))
    incidents.sort(key=lambda i: (i["started_at"] or "", i["id"]), reverse=True)
    if args.output != "table":
        dump(incidents, args.output, out)
        return OK
    rows = [
        [
            str(i["id"]),
            i["state"],
            i["severity"],
            i["team"],
            i["service"] or "—",
            i["environment"] or "—",
            local_time(i["fired_at"] or i["started_at"]),
            i["acknowledged_by"] or "—",
            i["title"],
        ]
        for i in incidents
    ]
    header = ["ID", "STATE", "SEVERITY", "TEAM", "SERVICE", "ENV", "SINCE", "ACKED BY", "TITLE"]
    print_table(rows, header, out, "no incidents")
    return OK


def _incident_act(action: str, done: str) -> Handler:
    def handler(client: Client, args: argparse.Namespace, out: TextIO) -> int:
        code = OK
        for incident_id in args.ids:
            try:
                incident = client.post(f"alerts/incidents/{incident_id}/{action}", {})
            except ApiError as exc:
                print(f"signalbox: refused: incident {incident_id}: {exc}", file=args.err)
                code = REFUSED
                continue
            if args.output != "table":
                dump(incident, args.output, out)
            else:
                print(f"incident #{incident['id']} {done}: {incident['title']}", file=out)
        return code

    return handler


SILENCE: dict[str, Handler] = {
    "add": _silence_add,
    "expire": _silence_expire,
    "list": _silence_list,
}
INCIDENT: dict[str, Handler] = {
    "list": _incident_list,
    "ack": _incident_act("acknowledge", "acknowledged"),
    "acknowledge": _incident_act("acknowledge", "acknowledged"),
    "resolve": _incident_act("resolve", "resolved"),
}
