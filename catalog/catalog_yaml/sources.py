"""Catalog files to import: their text, or why a named path could not be read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Source:
    """The text of one catalog file and the name its problems are reported under.

    `error` says why a named path could not be read; the import reports it with the
    problems of the files that could.
    """

    name: str
    text: str = ""
    error: str = ""


def sources_from_paths(paths: Iterable[str | Path]) -> list[Source]:
    """Every *.yaml/*.yml file named or found (recursively, sorted) under the paths."""
    sources: list[Source] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
            if not files:
                sources.append(Source(str(path), error="no *.yaml or *.yml files here"))
        elif path.is_file():
            files = [path]
        else:
            sources.append(Source(str(path), error="no such file or directory"))
            continue
        for file in files:
            try:
                sources.append(Source(str(file), file.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                sources.append(Source(str(file), error=f"cannot be read: {exc}"))
    return sources
