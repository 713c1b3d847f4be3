"""What an import reports: problems named by file, document, entity and field, and its refusals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A document: its file, its 1-based position in the file, and the entity once known."""

    file: str
    index: int = 0  # 0: the file as a whole
    kind: str = ""
    name: str = ""

    def __str__(self) -> str:
        text = f"{self.file}#{self.index}" if self.index else self.file
        return f"{text} {self.kind}/{self.name}" if self.kind and self.name else text


@dataclass(frozen=True)
class Problem:
    """Something wrong with the files, named by location and field."""

    where: Location
    field: str
    message: str
    line: int = 0  # 1-based, in the file; 0 when the problem is about no one place in it
    column: int = 0

    @property
    def key(self) -> str:
        """`file.yaml#2 Service/checkout: spec.owner`, the key in the API's `fields`."""
        return f"{self.where}: {self.field}" if self.field else str(self.where)

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"

    def located(self) -> str:
        """As str() says it, then where in the file: `... (line 4, column 9)`."""
        return f"{self} (line {self.line}, column {self.column})" if self.line else str(self)


class CatalogInvalid(Exception):
    """The files have problems; nothing was written."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s); nothing was imported")

    def as_fields(self) -> dict[str, list[str]]:
        fields: dict[str, list[str]] = {}
        for problem in self.problems:
            fields.setdefault(problem.key, []).append(problem.message)
        return fields


class CatalogForbidden(Exception):
    """The caller may not make some of the changes an import would make."""


class CatalogConflict(Exception):
    """The catalog changed under the import (a concurrent API write); nothing was written."""
