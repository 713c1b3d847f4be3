"""Man-page-quality `--help`: every command says what it does, shows examples and lists the
exit codes it can end with (docs/cli.md has the same table)."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from typing import Any

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
)

MEANING = {
    OK: "success",
    ROLLED_BACK: "the rollout was rolled back",
    USAGE: "bad usage or configuration (the message says what to fix)",
    ABORTED: "the rollout was aborted",
    FAILED: "the rollout failed (progress deadline); for scale, a launch failed on the way",
    TIMED_OUT: "still running when --timeout ran out (it carries on)",
    REFUSED: "refused by the API: bad input (names the field), 401/403, 404, 409, 423",
    UNREACHABLE: "Signalbox unreachable or failing (5xx), after retries when waiting",
    INTERRUPTED: "interrupted (Ctrl-C); what was started carries on",
}
COMMON = (OK, USAGE, REFUSED, UNREACHABLE)
ENV = (
    "Environment: SIGNALBOX_URL (the base URL) and SIGNALBOX_TOKEN (an API token), or --url "
    "and --token before the topic."
)


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's own line breaks (examples stay examples)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


Codes = Sequence[int | tuple[int, str]]


def epilog(examples: Sequence[str], codes: Codes = COMMON, extra: str = "") -> str:
    parts = ["Examples:", *[f"  {example}" for example in examples], "", "Exit codes:"]
    for code in codes:
        number, meaning = code if isinstance(code, tuple) else (code, MEANING[code])
        parts.append(f"  {number:<4} {meaning}")
    if extra:
        parts += ["", *textwrap.wrap(extra, 88)]
    parts += ["", *textwrap.wrap(ENV, 88)]
    return "\n".join(parts)


def command(
    commands: Any,
    name: str,
    summary: str,
    description: str,
    examples: Sequence[str],
    codes: Codes = COMMON,
    extra: str = "",
    aliases: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary (for its parent's list), a description, its
    examples and its exit codes."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description="\n".join(textwrap.wrap(description, 88)),
        epilog=epilog(examples, codes, extra),
        formatter_class=Formatter,
        aliases=list(aliases),
    )
    return parser


def topic(topics: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = topics.add_parser(
        name,
        help=summary,
        description="\n".join(textwrap.wrap(description, 88)),
        epilog=textwrap.fill(
            f"`signalbox {name} COMMAND --help` shows each command's "
            "options, examples and exit codes. " + ENV,
            88,
        ),
        formatter_class=Formatter,
    )
    return parser
