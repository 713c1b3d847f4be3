"""Parsing catalog files into YAML documents, strictly (a key given twice is an error)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from catalog.catalog_yaml.problems import Location, Problem
from catalog.catalog_yaml.sources import Source

if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    # libyaml's parser when PyYAML has it: ten times faster on a large catalog.
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CatalogLoader(_SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may legitimately be overridden
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


@dataclass
class Document:
    """One YAML document of a catalog file: where it is and what it holds."""

    where: Location
    body: Any


def parse(sources: Sequence[Source]) -> tuple[list[Document], list[Problem], bool]:
    """All documents of all files; and whether every file parsed to its end."""
    documents: list[Document] = []
    problems: list[Problem] = []
    complete = True
    for source in sources:
        if source.error:
            complete = False
            problems.append(Problem(Location(source.name), "", source.error))
            continue
        index = 0
        try:
            for body in yaml.load_all(source.text, Loader=_CatalogLoader):
                index += 1
                if body is not None:  # an empty document, such as after a trailing ---
                    documents.append(Document(Location(source.name, index), body))
        except RecursionError:
            complete = False
            problems.append(Problem(Location(source.name, index + 1), "", "nested too deeply"))
        except yaml.YAMLError as exc:
            complete = False
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            reason = getattr(exc, "problem", None) or str(exc)
            problems.append(
                Problem(Location(source.name, index + 1), "", f"invalid YAML{at}: {reason}")
            )
    return documents, problems, complete
