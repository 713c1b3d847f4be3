"""The JSON Schema of catalog documents (published for editors), its errors in our words."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.urls import reverse
from jsonschema import Draft202012Validator, ValidationError, validators

from catalog.catalog_yaml.kinds import API_VERSION
from catalog.catalog_yaml.problems import Location, Problem
from catalog.catalog_yaml.reading import Document
from catalog.models import slug_validator

SCHEMA_FILE = Path(__file__).with_name("catalog.schema.json")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
SCHEMA_URL_NAME = "catalog-schema"

REF_FORMAT = "must be service:NAME or external:NAME"
# The import's own wording where the generic one below would say less, by field and
# keyword. In a field, `*` stands for any key of a free-form map, `[]` for any list item;
# `{value}` is the value found, `{choices}` the values the schema allows.
WORDING: dict[tuple[str, str], str] = {
    ("", "type"): "a document must be a mapping with apiVersion, kind, metadata and spec",
    ("apiVersion", "required"): f"must be {API_VERSION}",
    ("kind", "required"): "missing; use one of " + ", ".join(SCHEMA["properties"]["kind"]["enum"]),
    ("kind", "enum"): "unknown kind {value}; use one of {choices}",
    ("metadata.name", "pattern"): str(slug_validator.message),
    ("spec.owner", "required"): "missing; name the owning team's metadata.name",
    ("spec.owner", "type"): "must be a team name (a string)",
    ("spec.tier", "enum"): "must be one of {choices} (1 is critical)",
    ("spec.dependsOn", "type"): "must be a list such as [service:checkout, external:stripe]",
    ("spec.dependsOn[]", "type"): REF_FORMAT,
    ("spec.dependsOn[]", "pattern"): REF_FORMAT,
    ("spec.members", "type"): "must map usernames to roles (viewer, deployer, owner)",
    ("spec.members.*", "type"): "a username must be a string",
    ("spec.members.*", "enum"): "unknown role {value}; use one of {choices}",
    ("spec.entries.*", "enum"): "unknown kind {value}; use one of {choices}",
    ("spec.entries.*", "pattern"): "bad name: letters, digits and '_', starting with a letter "
    "or '_' (a config key may also hold '.' and '-', and be prefixed KIND:)",
}
# Maps whose keys are the user's own (usernames, annotation names), not field names.
FREE_FORM = ("spec.members", "metadata.annotations", "spec.entries")
# Fields reported once as a whole, whatever inside them is wrong.
WHOLE = {"metadata.annotations": "must map strings to strings"}
TYPE_WORDS = {
    "string": "must be a string",
    "integer": "must be an integer",
    "boolean": "must be true or false",
    "object": "must be a mapping",
    "array": "must be a list",
}
# The wording for any other field; the limits in Django's words, as when only the model
# fields checked them.
GENERIC = {
    "required": "missing",
    "const": "must be {limit}",
    "enum": "must be one of {choices}",
    "pattern": "must match {limit}",
    "maxLength": "Ensure this value has at most {limit} characters (it has {length}).",
    "minimum": "Ensure this value is greater than or equal to {limit}.",
    "maximum": "Ensure this value is less than or equal to {limit}.",
}


def schema_url() -> str:
    """Where this server publishes the schema, from SIGNALBOX_BASE_URL (for exports)."""
    return settings.SIGNALBOX_BASE_URL.rstrip("/") + reverse(SCHEMA_URL_NAME)


def published_schema(schema_id: str) -> dict[str, Any]:
    """The schema as served: the file, identified by the address it is fetched from."""
    return {"$id": schema_id} | SCHEMA


# jsonschema's own messages repr the value, and a value can be a YAML alias bomb (a list
# holding the same list nine times, nine levels down) whose repr never ends. These three
# keywords are the ones in this schema that build such a message; the import words every
# error itself anyway, from the keyword and the value.
def _type(validator: Any, types: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    allowed = types if isinstance(types, list) else [types]
    if not any(validator.is_type(instance, name) for name in allowed):
        yield ValidationError(f"is not of type {', '.join(allowed)}")


def _enum(validator: Any, enums: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not any(_same(instance, each) for each in enums):
        yield ValidationError("is not one of the allowed values")


def _const(validator: Any, const: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not _same(instance, const):
        yield ValidationError(f"is not {const!r}")


def _same(instance: Any, expected: Any) -> bool:
    """JSON equality for the schema's scalars: true is not 1, and nothing is a list."""
    return type(instance) is type(expected) and instance == expected


def _strict_integer(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 10.0 as an integer; the import has always refused it (and true).
    return type(instance) is int


CatalogValidator = validators.extend(
    Draft202012Validator,
    validators={"type": _type, "enum": _enum, "const": _const},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)


def _inlined(node: Any) -> Any:
    """The schema with each `$ref` replaced by the definition it names (none refers back)."""
    if isinstance(node, list):
        return [_inlined(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        definition = SCHEMA["$defs"][node["$ref"].removeprefix("#/$defs/")]
        return _inlined({**definition, **{k: v for k, v in node.items() if k != "$ref"}})
    return {key: _inlined(value) for key, value in node.items() if key != "$defs"}


def _for_kind(kind: str) -> dict[str, Any]:
    """The schema as it applies to a document of this kind: only its branch of `allOf`."""
    branch = next(b for b in SCHEMA["allOf"] if b["if"]["properties"]["kind"]["const"] == kind)
    return {**SCHEMA, "allOf": [branch["then"]]}


# The file's rules rearranged for speed, not changed: with the kind known, the other
# branches' `if` cannot hold, and each $ref is resolved once here instead of in every
# document. 2,000 services: 0.65 s to check as the file is written, 0.27 s this way.
VALIDATOR_FOR_ANY = CatalogValidator(_inlined(SCHEMA))
# Every kind the file describes: the catalog's own and those other apps register.
SCHEMA_KINDS: list[str] = [b["if"]["properties"]["kind"]["const"] for b in SCHEMA["allOf"]]
VALIDATOR_FOR: dict[str, Any] = {
    kind: CatalogValidator(_inlined(_for_kind(kind))) for kind in SCHEMA_KINDS
}


def schema_problems(document: Document, body: Any, where: Location) -> list[Problem]:
    """Every way `body` breaks the schema, worded for people: one problem per field and fault."""
    worded = [
        (field, message, at_key, str(error.validator))
        for error in _validator(body).iter_errors(body)
        for field, message, at_key in _worded(error, body)
    ]
    # A value of the wrong type fails its enum or limits too; its type is the thing to fix.
    typed = {field for field, _, _, keyword in worded if keyword == "type"}
    problems: dict[tuple[str, str], Problem] = {}
    for field, message, at_key, keyword in worded:
        if (field not in typed or keyword == "type") and (field, message) not in problems:
            problems[field, message] = document.problem(where, field, message, at_key=at_key)
    return list(problems.values())


def _validator(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("kind"), str):
        return VALIDATOR_FOR.get(body["kind"], VALIDATOR_FOR_ANY)
    return VALIDATOR_FOR_ANY


def _worded(error: ValidationError, body: Any) -> Iterator[tuple[str, str, bool]]:
    """(field, message, whether the key rather than the value is wrong) for one error."""
    steps = list(error.absolute_path)
    keyword = str(error.validator)
    if keyword == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        for key in error.instance:
            if key not in allowed:
                field = _field(body, [*steps, key])
                yield field, "unknown field; allowed here: " + ", ".join(allowed), True
        return
    if keyword == "required":
        for name in error.validator_value:
            if name not in error.instance:  # point at the key it lacks, or `key:` with no value
                field = _field(body, [*steps, name])
                yield field, _message(field, keyword, error), True
        return
    at_key = "propertyNames" in error.relative_schema_path
    if at_key:  # the key itself is wrong: name it in the field
        steps.append(error.instance)
    field = _field(body, steps)
    for whole, message in WHOLE.items():
        if field == whole or field.startswith(whole + "."):
            yield whole, message, False
            return
    yield field, _message(field, keyword, error), at_key


def _message(field: str, keyword: str, error: ValidationError) -> str:
    wording = WORDING.get((_pattern(field), keyword))
    if keyword == "type" and wording is None:
        expected = [t for t in _listed(error.validator_value) if t != "null"]
        return TYPE_WORDS[expected[0]]
    template = wording or GENERIC.get(keyword, "does not fit the schema ({keyword})")
    choices = ", ".join(str(c) for c in _listed(error.validator_value) if c is not None)
    return template.format(
        value=_show(error.instance),
        choices=choices,
        limit=error.validator_value,
        length=len(error.instance) if isinstance(error.instance, str) else 0,
        keyword=keyword,
    )


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _field(body: Any, steps: Iterable[Any]) -> str:
    """A place in the document as a field path: `spec.dependsOn[0]`, `spec.members.alice`."""
    field = ""
    node = body
    for step in steps:
        if isinstance(node, list):
            field += f"[{step}]"
        else:
            field = f"{field}.{step}" if field else str(step)
        node = node[step] if isinstance(node, list | dict) and _holds(node, step) else None
    return field


def _holds(node: list[Any] | dict[Any, Any], step: Any) -> bool:
    return step in node if isinstance(node, dict) else 0 <= step < len(node)


def _pattern(field: str) -> str:
    """The field as WORDING names it: `spec.dependsOn[]`, `spec.members.*`."""
    for free in FREE_FORM:
        if field.startswith(free + "."):
            return free + ".*"
    head, bracket, _ = field.partition("[")
    return head + "[]" if bracket else field


def _show(value: Any) -> str:
    """A bad value for a message: scalars as written, never a whole (possibly huge) tree."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)[:100]
