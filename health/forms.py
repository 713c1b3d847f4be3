"""The check spec form of the dashboard: a spec's values as form fields and a posted form
back as the API's request body.

Only the shape changes here (headers as lines, conditions as rows, empty as null); every
rule about the values is the API serializer's and `health.specs.spec_errors`, so a page and
the API accept and refuse exactly the same specs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from health.choices import CheckKind, HttpMethod, JsonOp, Scheme
from health.models import CheckSpec

# Blank condition rows offered under the spec's own, so a condition can be added without JS.
BLANK_CONDITION_ROWS = 2
NULLABLE = frozenset({"port", "max_latency_ms"})


@dataclass(frozen=True)
class SpecField:
    """One input of the form: its name (the API's field name), label, widget and hint."""

    name: str
    label: str
    widget: str = "number"
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    attrs: dict[str, str] = field(default_factory=dict)


GROUPS: tuple[tuple[str, tuple[SpecField, ...]], ...] = (
    (
        "What to probe",
        (
            SpecField("kind", "Kind", "select", choices=tuple(CheckKind.choices)),
            SpecField("scheme", "Scheme", "select", "HTTP checks", tuple(Scheme.choices)),
            SpecField("method", "Method", "select", "HTTP checks", tuple(HttpMethod.choices)),
            SpecField("port", "Port", help="Empty: the instance's own port", attrs={"min": "1"}),
            SpecField("path", "Path", "text", "HTTP checks: an absolute path such as /health"),
            SpecField(
                "headers",
                "Request headers",
                "textarea",
                "One per line: Name: value",
            ),
            SpecField("grpc_service", "gRPC service", "text", "Empty: the whole server"),
        ),
    ),
    (
        "What counts as healthy",
        (
            SpecField(
                "expected_statuses",
                "Expected statuses",
                "text",
                "Codes and ranges separated by commas: 200-399,404",
            ),
            SpecField("body_contains", "Body contains", "text", "Empty: not checked"),
            SpecField(
                "body_regex", "Body matches (regular expression)", "text", "Empty: not checked"
            ),
            SpecField(
                "max_latency_ms",
                "Latency bound (ms)",
                help="Slower answers warn; empty: no bound",
                attrs={"min": "1"},
            ),
            SpecField("tls_warn_days", "TLS: warn days before expiry", attrs={"min": "0"}),
            SpecField("tls_verify", "Verify TLS certificates", "checkbox"),
        ),
    ),
    (
        "Timing",
        (
            SpecField("interval_seconds", "Interval (s)", attrs={"min": "1"}),
            SpecField(
                "timeout_seconds",
                "Timeout (s)",
                help="At most the interval",
                attrs={"min": "0", "step": "any"},
            ),
            SpecField("initial_delay_seconds", "Initial delay (s)", attrs={"min": "0"}),
            SpecField(
                "success_threshold", "Successes to pass", help="1 to 100", attrs={"min": "1"}
            ),
            SpecField("failure_threshold", "Failures to fail", help="1 to 100", attrs={"min": "1"}),
        ),
    ),
)
FIELD_NAMES = tuple(f.name for _, fields in GROUPS for f in fields)
OPS = tuple(JsonOp.choices)


def values_of(spec: CheckSpec) -> dict[str, Any]:
    """The form's values for a saved or default spec."""
    values: dict[str, Any] = {name: getattr(spec, name) for name in FIELD_NAMES}
    values["headers"] = "\n".join(f"{k}: {v}" for k, v in (spec.headers or {}).items())
    for name in NULLABLE:
        values[name] = "" if values[name] is None else values[name]
    values["conditions"] = [
        {
            "path": c.get("path", ""),
            "op": c.get("op", JsonOp.EQUALS),
            "value": _shown(c["value"]) if "value" in c else "",
        }
        for c in spec.json_conditions or []
    ]
    return values


def values_posted(post: QueryDict) -> dict[str, Any]:
    """The form's values as the person typed them (shown again beside the errors)."""
    values: dict[str, Any] = {name: post.get(name, "") for name in FIELD_NAMES}
    values["tls_verify"] = "tls_verify" in post
    values["conditions"] = [
        {"path": path, "op": op, "value": value}
        for path, op, value in zip(
            post.getlist("condition_path"),
            post.getlist("condition_op"),
            post.getlist("condition_value"),
            strict=False,
        )
        if path.strip()
    ]
    return values


def body_of(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(the API request body, errors of the form's own shapes: headers' and conditions' lines)."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {name: values[name] for name in FIELD_NAMES}
    for name in NULLABLE:
        body[name] = None if str(body[name]).strip() == "" else body[name]
    headers: dict[str, str] = {}
    for number, line in enumerate(str(values["headers"]).splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            errors["headers"] = f"line {number} ({line.strip()!r}) needs a colon: Name: value"
            break
        headers[name.strip()] = value.strip()
    body["headers"] = headers
    body["json_conditions"] = [
        _condition(c["path"].strip(), c["op"], c["value"]) for c in values["conditions"]
    ]
    return body, errors


def _condition(path: str, op: str, value: str) -> dict[str, Any]:
    if op == JsonOp.EXISTS:
        return {"path": path, "op": op}
    return {"path": path, "op": op, "value": _typed(value)}


def _typed(text: str) -> Any:
    """A condition's value: JSON when it reads as JSON (5, true, "pass"), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _shown(value: Any) -> str:
    """A condition value as typed back: strings bare unless they would read as JSON."""
    if isinstance(value, str) and _typed(value) == value:
        return value
    return json.dumps(value)
