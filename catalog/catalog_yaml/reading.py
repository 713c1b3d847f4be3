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


# Line and column (1-based) of one place in a file.
Position = tuple[int, int]
# Field path (`spec.dependsOn[0]`) -> where its key and its value are.
Marks = dict[str, tuple[Position, Position]]


class FileMarks:
    """Where each field of each document of one file is, worked out when first asked.

    Only problems and warnings need positions. Working them out while parsing took a
    clean import of 2,000 services from 0.19 s to 0.33 s of parsing, so instead the file
    is composed again, once, when a problem first asks for one.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._by_index: dict[int, Marks] | None = None

    def of(self, index: int) -> Marks:
        if self._by_index is None:
            self._by_index = {}
            try:
                for number, node in enumerate(yaml.compose_all(self.text, _SafeLoader), 1):
                    if node is not None:
                        self._by_index[number] = _marks(node)
            except (yaml.YAMLError, RecursionError):
                pass  # parse() reported it; the documents before it are placed
        return self._by_index.get(index, {})


@dataclass
class Document:
    """One YAML document of a catalog file: where it is, what it holds, where each field sits."""

    where: Location
    body: Any
    marks: FileMarks

    def position(self, path: str, *, of_key: bool = False) -> Position:
        """Where a field's value (or key) is; for a field the file lacks, its parent's key."""
        marks = self.marks.of(self.where.index)
        if path in marks:
            key, value = marks[path]
            return key if of_key else value
        while path:
            path = parent_field(path)
            if path in marks:
                return marks[path][0]
        return marks.get("", ((0, 0), (0, 0)))[0]

    def problem(self, where: Location, path: str, message: str, *, at_key: bool = False) -> Problem:
        """A problem with one field of this document, placed at the field in the file."""
        line, column = self.position(path, of_key=at_key)
        return Problem(where, path, message, line, column)


def parent_field(path: str) -> str:
    """`spec.dependsOn[0]` -> `spec.dependsOn` -> `spec` -> `` (the document)."""
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


def _marks(root: yaml.Node) -> Marks:
    """The position of every key and value under `root`, by field path.

    Iterative, and each node once: YAML aliases can share one list many times over.
    """
    start = _position(root)
    marks = {"": (start, start)}
    seen: set[int] = set()
    stack: list[tuple[str, yaml.Node]] = [("", root)]
    while stack:
        path, node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [
                (f"{path}.{key.value}" if path else str(key.value), key, value)
                for key, value in node.value
                if isinstance(key, yaml.ScalarNode)
            ]
        elif isinstance(node, yaml.SequenceNode):
            children = [(f"{path}[{n}]", item, item) for n, item in enumerate(node.value)]
        else:
            continue
        for sub, key, value in children:
            marks.setdefault(sub, (_position(key), _position(value)))
            stack.append((sub, value))
    return marks


def _position(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


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
        marks = FileMarks(source.text)
        try:
            for body in yaml.load_all(source.text, Loader=_CatalogLoader):
                index += 1
                if body is not None:  # an empty document, such as after a trailing ---
                    documents.append(Document(Location(source.name, index), body, marks))
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
