"""`--output json|yaml|table`, shared by every read command, and the table printer.

json and yaml print what the API answered (a list for list commands, every page of it);
table is the one for people: aligned columns with a header, or a command's own lines.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TextIO

from .exits import Usage

FORMATS = ("table", "json", "yaml")


def add_output(command: argparse.ArgumentParser, legacy_json: bool = False) -> None:
    command.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="table",
        help="table (for people, the default), json or yaml (the API's fields, for scripts)",
    )
    if legacy_json:
        command.add_argument(
            "--json",
            action="store_const",
            const="json",
            dest="output",
            help="the same as --output json (kept for older scripts)",
        )


def add_chunk_size(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--chunk-size",
        type=int,
        default=500,
        metavar="N",
        help="rows fetched per request while paging through the whole list (1 to 500, default 500)",
    )


def chunk_size(args: argparse.Namespace) -> int:
    size = int(args.chunk_size)
    if not 1 <= size <= 500:
        raise Usage(f"--chunk-size must be from 1 to 500 (got {size})")
    return size


def dump(data: Any, fmt: str, out: TextIO, *, stream: bool = False) -> None:
    """The data as JSON or YAML. `stream`: one compact JSON line (or one YAML document) per
    call, for --watch."""
    if fmt == "json":
        text = json.dumps(data, ensure_ascii=False) if stream else json.dumps(data, indent=2)
        print(text, file=out)
        return
    try:
        import yaml
    except ImportError:  # installed with --no-deps
        raise Usage("--output yaml needs PyYAML: pip install PyYAML") from None
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    if stream:
        print("---", file=out)
    print(text, end="", file=out)


def render(
    data: Any, args: argparse.Namespace, out: TextIO, table: Callable[[Any, TextIO], None]
) -> None:
    """json/yaml of `data`, or `table(data, out)`."""
    if args.output == "table":
        table(data, out)
    else:
        dump(data, args.output, out)


def print_table(
    rows: Sequence[Sequence[str]], header: Sequence[str], out: TextIO, empty: str
) -> None:
    """Columns aligned under an upper-case header, as kubectl and amtool print them; the
    last column is not padded (it may be long)."""
    if not rows:
        print(empty, file=out)
        return
    table = [list(header), *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        print("  ".join(cells).rstrip(), file=out)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def local_time(value: str | None) -> str:
    """An API timestamp in the terminal's time zone, to the second (— for none)."""
    if not value:
        return "—"
    return parse_time(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def now() -> str:
    return datetime.now().strftime("%H:%M:%S")
