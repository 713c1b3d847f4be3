"""`signalbox catalog diff|apply|export`: catalog as code through the API's import endpoint.

The files are sent together as one multi-document YAML text (so a service in one file may
name a team declared in another, and the import stays all or nothing), and the problems the
API names by document (`catalog#7 Service/web: spec.owner`) are told back by file and
document (`services/web.yaml#2 Service/web: spec.owner`).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from . import helptext
from .client import ApiError, Client, with_query
from .exits import DIFFERENT, OK, REFUSED, UNREACHABLE, USAGE, Usage
from .output import dump

Handler = Callable[[Client, argparse.Namespace, TextIO], int]
SUFFIXES = (".yaml", ".yml")
COMBINED = "catalog"
SIGNS = {"created": "+", "updated": "~", "deleted": "-"}
_KEY = re.compile(rf"^{COMBINED}#(\d+)\b")


def add_parser(topics: Any) -> None:
    catalog = helptext.topic(
        topics,
        "catalog",
        "catalog as code: diff and apply YAML files (teams, services, environments...)",
        "Keep the catalog in git: `diff` shows what importing the files would change "
        "(a dry run of the API's import, nothing written), `apply` imports them, all or "
        "nothing. Directories are read recursively (*.yaml, *.yml, sorted). The format is "
        "in docs/catalog.md. Tokens need the `write` scope, even for diff.",
    )
    commands = catalog.add_subparsers(dest="command", required=True, metavar="COMMAND")
    diff = helptext.command(
        commands,
        "diff",
        "show what importing the files would change (writes nothing)",
        "Show what `apply` would do with these files: + created, ~ updated (with the "
        "fields), - deleted (with --prune), then the counts. Exits 1 when there are changes, "
        "so CI can tell drift from a clean catalog, as `kubectl diff` does.",
        [
            "signalbox catalog diff catalog/",
            "signalbox catalog diff --prune catalog/ services/web.yaml",
            "signalbox catalog diff catalog/ -o json | jq '.changes[]'",
        ],
        [
            (OK, "no changes: the catalog already matches the files"),
            (DIFFERENT, "the files would change the catalog (listed)"),
            USAGE,
            (
                REFUSED,
                "refused: problems in the files (each named by file#document and field), "
                "403 (which team), 409",
            ),
            UNREACHABLE,
        ],
    )
    apply = helptext.command(
        commands,
        "apply",
        "import the files into the catalog, all or nothing",
        "Create or update every entity the files declare (and with --prune delete what they "
        "leave out), in one transaction: any problem and nothing is written. Prints each "
        "change and the counts.",
        [
            "signalbox catalog apply catalog/",
            "signalbox catalog apply --prune catalog/",
            "signalbox catalog apply --dry-run catalog/   # the same as diff, exit 0",
        ],
        [
            OK,
            USAGE,
            (
                REFUSED,
                "refused: problems in the files (each named by file#document and field), "
                "403 (which team), 409 (the catalog changed meanwhile: run it again)",
            ),
            UNREACHABLE,
        ],
    )
    for command in (diff, apply):
        command.add_argument("paths", nargs="+", metavar="PATH", help="YAML files or directories")
        command.add_argument(
            "--prune",
            action="store_true",
            help="also delete entities the files do not declare (refused for ones that run)",
        )
        command.add_argument(
            "-o",
            "--output",
            choices=("table", "json", "yaml"),
            default="table",
            help="table (the default), or the API's answer as json or yaml",
        )
    apply.add_argument("--dry-run", action="store_true", help="check and show, write nothing")

    export = helptext.command(
        commands,
        "export",
        "print the whole catalog as YAML",
        "Print the catalog as multi-document YAML in a fixed order (the same catalog always "
        "exports to the same bytes), ready to commit, edit and apply. Needs only `read`.",
        ["signalbox catalog export > catalog.yaml"],
    )
    export.add_argument("--out", metavar="FILE", help="write it to FILE instead of stdout")


@dataclass
class Part:
    """One file of the combined text: its name and how many YAML documents it holds."""

    name: str
    documents: int


def read_files(paths: list[str]) -> tuple[str, list[Part]]:
    """The files' text joined into one multi-document YAML, and where each one sits."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                raise Usage(f"{raw}: no *.yaml or *.yml files here")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise Usage(f"{raw}: no such file or directory")
    texts: list[str] = []
    parts: list[Part] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise Usage(f"{file}: cannot be read: {exc}") from None
        documents = _count_documents(str(file), text)
        if documents == 0:
            continue  # empty, or only comments: nothing to import
        parts.append(Part(str(file), documents))
        if texts:
            # Each file starts a document of its own, as it does when imported alone.
            texts.append("" if _starts_with_marker(text) else "---\n")
        texts.append(text if text.endswith("\n") else text + "\n")
    combined = "".join(texts)
    if sum(p.documents for p in parts) != _count_documents(COMBINED, combined):
        parts = []  # cannot tell documents back to files: problems keep the combined names
    return combined, parts


def _starts_with_marker(text: str) -> bool:
    """Whether the first line that is not blank, a comment or a directive is `---`."""
    for row in text.splitlines():
        stripped = row.strip()
        if not stripped or stripped.startswith(("#", "%")):
            continue
        return stripped.startswith("---")
    return False


def _count_documents(name: str, text: str) -> int:
    """Documents in one file as the server counts them (an empty one between `---` counts)."""
    try:
        import yaml
    except ImportError:
        raise Usage("catalog diff and apply need PyYAML: pip install PyYAML") from None
    try:
        return sum(1 for _ in yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise Usage(f"{name}: not valid YAML{where}: {problem}") from None


def locate(key: str, parts: list[Part]) -> str:
    """`catalog#7 Service/web: spec.owner` -> `services/web.yaml#2 Service/web: spec.owner`."""
    found = _KEY.match(key)
    if not found:
        return key
    index = int(found.group(1))
    for part in parts:
        if index <= part.documents:
            return f"{part.name}#{index}{key[found.end() :]}"
        index -= part.documents
    return key


def _import(client: Client, args: argparse.Namespace, *, dry_run: bool) -> Any:
    text, parts = read_files(args.paths)
    path = with_query(
        "catalog/import", dry_run="1" if dry_run else None, prune="1" if args.prune else None
    )
    try:
        return client.post(path, {"yaml": text, "filename": COMBINED})
    except ApiError as exc:
        if exc.status == 400 and exc.fields:
            problems = [
                f"{locate(key, parts)}: {' '.join(reasons)}" for key, reasons in exc.fields.items()
            ]
            raise Problems(problems) from None
        raise


class Problems(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


def _report(result: dict[str, Any], args: argparse.Namespace, out: TextIO) -> None:
    if args.output != "table":
        dump(result, args.output, out)
        return
    for change in result["changes"]:
        fields = f" ({', '.join(change['fields'])})" if change["fields"] else ""
        print(
            f"  {SIGNS.get(change['action'], '?')} {change['kind']}/{change['name']}{fields}",
            file=out,
        )
    for warning in result["warnings"]:
        print(f"signalbox: warning: {warning}", file=args.err)
    counts = ", ".join(f"{result[k]} {k}" for k in ("created", "updated", "unchanged", "deleted"))
    if result["dry_run"]:
        print(f"Dry run, nothing written. Would be: {counts}.", file=out)
    else:
        print(f"Imported: {counts}.", file=out)


def _changes(result: dict[str, Any]) -> bool:
    return bool(result["created"] or result["updated"] or result["deleted"])


def _guarded(run: Handler) -> Handler:
    def handler(client: Client, args: argparse.Namespace, out: TextIO) -> int:
        try:
            return run(client, args, out)
        except Problems as exc:
            for problem in exc.problems:
                print(f"signalbox: error: {problem}", file=args.err)
            print(
                f"signalbox: refused: {len(exc.problems)} problem(s) found; nothing was "
                "imported. Fix them and run it again.",
                file=args.err,
            )
            return REFUSED

    return handler


def _diff(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    result = _import(client, args, dry_run=True)
    _report(result, args, out)
    return DIFFERENT if _changes(result) else OK


def _apply(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    _report(_import(client, args, dry_run=args.dry_run), args, out)
    return OK


def _export(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    text = client.text("catalog/export")
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise Usage(f"cannot write {args.out}: {exc}") from None
        print(f"exported the catalog to {args.out}", file=out)
    else:
        out.write(text)
    return OK


COMMANDS: dict[str, Handler] = {
    "diff": _guarded(_diff),
    "apply": _guarded(_apply),
    "export": _export,
}
