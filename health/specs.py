"""Check specs: validation with field-level reasons, and the plain effective spec probes run."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jsonpath_ng.exceptions import JsonPathParserError
from jsonpath_ng.ext.parser import parse as jsonpath_parse
from yarl import URL

from health.choices import CheckKind, HttpMethod, JsonOp, Scheme
from health.models.checks import (
    DEFAULT_EXPECTED_STATUSES,
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_PATH,
    DEFAULT_SUCCESS_THRESHOLD,
    DEFAULT_TIMEOUT_SECONDS,
    CheckSpec,
)

MAX_TIMEOUT_SECONDS = 60.0
MAX_PATH_CHARS = 2000
# Whitespace and control characters, and the backslash that some clients read as "/".
_PATH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\#]")
# Stands in for any instance when checking that a path stays on it.
_SOME_INSTANCE = URL.build(scheme="http", host="instance.invalid", port=8080)
MAX_INTERVAL_SECONDS = 86400
_STATUS_RE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")


def parse_statuses(text: str) -> tuple[tuple[int, int], ...]:
    """'200-399,404' -> ((200, 399), (404, 404)); ValueError with the reason otherwise."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        match = _STATUS_RE.match(part)
        if not match:
            raise ValueError(f"{part.strip()!r} is not a status code or range like 200-399")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if not (100 <= low <= high <= 599):
            raise ValueError(f"{part.strip()!r} must be codes between 100 and 599, low-high")
        ranges.append((low, high))
    return tuple(ranges)


@lru_cache(maxsize=1024)
def compiled_jsonpath(path: str) -> Any:
    return jsonpath_parse(path)


def instance_url(origin: URL, path: str) -> URL | None:
    """The URL a probe requests for `path` on the instance at `origin`; None when the path
    would name another scheme, host or port (a network-path reference such as `//host/`)."""
    try:
        url = origin.join(URL(path))
    except (ValueError, TypeError, IndexError):  # yarl 1.25 raises IndexError on '//[::1]@'
        return None
    same = (url.scheme, url.host, url.port) == (origin.scheme, origin.host, origin.port)
    return url if same else None


def path_problem(path: Any) -> str:
    """Why `path` is not an absolute path on the instance ("" when it is)."""
    if not isinstance(path, str) or not path.startswith("/"):
        return "must start with / (the probe never leaves the instance)"
    if path.startswith("//"):
        return (
            "must not start with // (that names another host; the probe never leaves the instance)"
        )
    if len(path) > MAX_PATH_CHARS:
        return f"must be at most {MAX_PATH_CHARS} characters"
    bad = _PATH_FORBIDDEN.search(path)
    if bad:
        return (
            f"must not contain {bad.group()!r}: use an absolute path like /health "
            "(percent-encode other characters)"
        )
    if instance_url(_SOME_INSTANCE, path) is None:
        return "must be an absolute path on the instance, not a URL"
    return ""


def spec_errors(data: dict[str, Any]) -> dict[str, str]:
    """Every problem with a spec's values, keyed by field, each with the reason and the fix."""
    errors: dict[str, str] = {}
    kind = data.get("kind", CheckKind.HTTP)
    if kind not in CheckKind.values:
        errors["kind"] = f"must be one of {', '.join(CheckKind.values)}"
    if data.get("scheme", Scheme.HTTP) not in Scheme.values:
        errors["scheme"] = "must be http or https"
    method = data.get("method", HttpMethod.GET)
    if method not in HttpMethod.values:
        errors["method"] = f"must be one of {', '.join(HttpMethod.values)}"
    path = data.get("path", DEFAULT_PATH) or ""
    problem = path_problem(path) if kind == CheckKind.HTTP else ""
    if problem:
        errors["path"] = problem
    try:
        parse_statuses(data.get("expected_statuses", DEFAULT_EXPECTED_STATUSES) or "")
    except ValueError as exc:
        errors["expected_statuses"] = str(exc)
    headers = data.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        errors["headers"] = 'must be an object of string names to string values: {"X-A": "b"}'
    elif any(k.lower() == "host" for k in headers):
        errors["headers"] = "must not set Host: the probe only talks to the instance"
    regex = data.get("body_regex", "") or ""
    if regex:
        try:
            re.compile(regex)
        except re.error as exc:
            errors["body_regex"] = f"is not a valid regular expression: {exc}"
    conditions_error = _conditions_error(data.get("json_conditions", []))
    if conditions_error:
        errors["json_conditions"] = conditions_error
    if method == HttpMethod.HEAD and (
        data.get("body_contains") or regex or data.get("json_conditions")
    ):
        errors["method"] = "HEAD has no body to check; use GET with body conditions"
    interval = data.get("interval_seconds", DEFAULT_INTERVAL_SECONDS)
    timeout = data.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if not isinstance(interval, int) or not (1 <= interval <= MAX_INTERVAL_SECONDS):
        errors["interval_seconds"] = (
            f"must be a whole number of seconds, 1 to {MAX_INTERVAL_SECONDS}"
        )
    if not isinstance(timeout, (int, float)) or not (0 < timeout <= MAX_TIMEOUT_SECONDS):
        errors["timeout_seconds"] = f"must be more than 0 and at most {MAX_TIMEOUT_SECONDS:g}"
    elif isinstance(interval, int) and timeout > interval:
        errors["timeout_seconds"] = "must not exceed interval_seconds (probes would overlap)"
    for name in ("success_threshold", "failure_threshold"):
        value = data.get(name, 1)
        if not isinstance(value, int) or not (1 <= value <= 100):
            errors[name] = "must be a whole number from 1 to 100"
    port = data.get("port")
    if port is not None and (not isinstance(port, int) or not (1 <= port <= 65535)):
        errors["port"] = "must be 1 to 65535, or empty for the instance's port"
    return errors


def _conditions_error(conditions: Any) -> str:
    if not isinstance(conditions, list):
        return 'must be a list of {"path", "op", "value"} objects'
    for index, condition in enumerate(conditions):
        if not isinstance(condition, dict) or set(condition) - {"path", "op", "value"}:
            return f'item {index}: must be an object with "path", "op" and "value" only'
        op = condition.get("op", JsonOp.EQUALS)
        if op not in JsonOp.values:
            return f"item {index}: op must be one of {', '.join(JsonOp.values)}"
        if op != JsonOp.EXISTS and "value" not in condition:
            return f'item {index}: op {op!r} needs a "value"'
        if op in (JsonOp.LESS, JsonOp.GREATER) and not isinstance(
            condition.get("value"), (int, float)
        ):
            return f"item {index}: op {op!r} needs a number value"
        try:
            compiled_jsonpath(str(condition.get("path", "")))
        except (JsonPathParserError, Exception) as exc:  # the parser raises several kinds
            return f"item {index}: path {condition.get('path')!r} is not JSONPath: {exc}"
    return ""


@dataclass(frozen=True)
class ProbeSpec:
    """Everything one probe needs, detached from the ORM so the asyncio loop never queries."""

    kind: str = CheckKind.HTTP
    scheme: str = Scheme.HTTP
    method: str = HttpMethod.GET
    port: int | None = None
    path: str = DEFAULT_PATH
    headers: tuple[tuple[str, str], ...] = ()
    expected_statuses: tuple[tuple[int, int], ...] = ((200, 399),)
    body_contains: str = ""
    body_regex: str = ""
    json_conditions: tuple[tuple[str, str, Any], ...] = field(default=())
    max_latency_ms: int | None = None
    grpc_service: str = ""
    tls_warn_days: int = 14
    tls_verify: bool = True
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    initial_delay_seconds: int = 0
    success_threshold: int = DEFAULT_SUCCESS_THRESHOLD
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD

    @classmethod
    def from_model(cls, spec: CheckSpec) -> ProbeSpec:
        return cls(
            kind=spec.kind,
            scheme=spec.scheme,
            method=spec.method,
            port=spec.port,
            path=spec.path or "/",
            headers=tuple(sorted((spec.headers or {}).items())),
            expected_statuses=parse_statuses(spec.expected_statuses),
            body_contains=spec.body_contains,
            body_regex=spec.body_regex,
            json_conditions=tuple(
                (c["path"], c.get("op", JsonOp.EQUALS), c.get("value"))
                for c in spec.json_conditions or []
            ),
            max_latency_ms=spec.max_latency_ms,
            grpc_service=spec.grpc_service,
            tls_warn_days=spec.tls_warn_days,
            tls_verify=spec.tls_verify,
            interval_seconds=spec.interval_seconds,
            timeout_seconds=spec.timeout_seconds,
            initial_delay_seconds=spec.initial_delay_seconds,
            success_threshold=spec.success_threshold,
            failure_threshold=spec.failure_threshold,
        )

    def expects(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.expected_statuses)


DEFAULT_SPEC = ProbeSpec()
