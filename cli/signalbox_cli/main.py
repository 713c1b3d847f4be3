"""The `signalbox` command: topics rollout (rollout.py), scale (scale.py), silence and
incident (alerts.py), catalog (catalog.py) and completion (completion.py).

Exit codes (docs/cli.md): 0 success, 1 rolled back (catalog diff: changes), 2 bad usage or
configuration, 3 aborted, 4 failed (progress deadline), 5 still running when --timeout ran
out, 6 refused by the API (bad input, permission, conflict, freeze), 7 Signalbox
unreachable, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import TextIO

from . import __version__, alerts, catalog, completion, helptext, rollout, scale
from .client import ApiError, Client, Unreachable
from .exits import INTERRUPTED, REFUSED, UNREACHABLE, USAGE, Usage

Handler = Callable[[Client, argparse.Namespace, TextIO], int]
TOPICS: dict[str, dict[str, Handler]] = {
    "rollout": rollout.COMMANDS,
    "scale": scale.COMMANDS,
    "silence": alerts.SILENCE,
    "incident": alerts.INCIDENT,
    "catalog": catalog.COMMANDS,
}
ALL_CODES = (0, 1, 2, 3, 4, 5, 6, 7, 130)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signalbox",
        description=textwrap.fill(
            "Signalbox from CI and a terminal: start, watch and steer rollouts, steer scaling "
            "groups, silence and acknowledge alerts, and keep the catalog as code. It speaks "
            "only the HTTP API.",
            88,
        ),
        epilog=helptext.epilog(
            [
                "signalbox rollout start --service checkout --env production --version 1.5 --wait",
                "signalbox rollout get 42 --watch",
                "signalbox incident list --team payments",
                "signalbox silence add --team payments service=checkout -d 2h -c 'OPS-12'",
                "signalbox catalog diff catalog/",
                "signalbox scale set search production 4 --wait",
                'eval "$(signalbox completion bash)"',
            ],
            ALL_CODES,
            "Every command has its own --help with examples and the exit codes it can end "
            "with. `rollout get` and `catalog diff` use 1 for a rollback and for changes "
            "found.",
        ),
        formatter_class=helptext.Formatter,
    )
    parser.add_argument("--url", help="Signalbox base URL (default: $SIGNALBOX_URL)")
    parser.add_argument("--token", help="API token (default: $SIGNALBOX_TOKEN)")
    parser.add_argument("--version", action="version", version=f"signalbox {__version__}")
    topics = parser.add_subparsers(dest="topic", required=True, metavar="TOPIC")
    rollout.add_parser(topics)
    scale.add_parser(topics)
    alerts.add_parsers(topics)
    catalog.add_parser(topics)
    completion.add_parser(topics)
    return parser


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
    args.err = err
    if args.topic == "completion":
        return completion.run(parser, args, out)
    try:
        client = _client(args)
        return TOPICS[args.topic][args.command](client, args, out)
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
    except BrokenPipeError:  # `signalbox rollout list | head`: stop quietly, as ls does
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _client(args: argparse.Namespace) -> Client:
    url = args.url or os.environ.get("SIGNALBOX_URL", "")
    token = args.token or os.environ.get("SIGNALBOX_TOKEN", "")
    if not url:
        raise Usage("set SIGNALBOX_URL (e.g. https://signalbox.example.com) or pass --url")
    if not url.startswith(("http://", "https://")):
        raise Usage(f"SIGNALBOX_URL must start with http:// or https:// (got {url!r})")
    if not token:
        raise Usage(
            "set SIGNALBOX_TOKEN to a token with the scopes the command needs (read; deploy "
            "to act on rollouts, groups, silences and incidents; write for catalog apply) "
            "(manage.py issue_token --team TEAM --scopes read,deploy) or pass --token"
        )
    return Client(url, token)
