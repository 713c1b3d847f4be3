"""HTTP probe: status, body and JSON-path conditions, latency, and application/health+json.

Redirects: followed only while they stay on the instance (same scheme, host and port), at
most MAX_REDIRECTS times, as Kubernetes does; a redirect elsewhere is not followed and its
3xx status is judged as the final answer, with the refused target in the reason.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import aiohttp
from yarl import URL

from controlplane.outbound import Refused, check_host, refused_by
from health.choices import CheckStatus, HttpMethod, JsonOp, Scheme
from health.probes import ProbeResult
from health.specs import ProbeSpec, compiled_jsonpath, instance_url

MAX_REDIRECTS = 3
MAX_BODY_BYTES = 65_536
MAX_COMPONENTS = 30
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# draft-inadarei-api-health-check: pass/ok/up, warn, fail/error/down.
HEALTH_JSON_STATUS = {
    "pass": CheckStatus.PASS,
    "ok": CheckStatus.PASS,
    "up": CheckStatus.PASS,
    "warn": CheckStatus.WARN,
    "fail": CheckStatus.FAIL,
    "error": CheckStatus.FAIL,
    "down": CheckStatus.FAIL,
}


def base_url(scheme: str, host: str, port: int) -> URL:
    return URL.build(scheme=scheme, host=host, port=port)


async def probe_http(
    session: aiohttp.ClientSession, spec: ProbeSpec, host: str, port: int
) -> ProbeResult:
    started = time.perf_counter()
    origin = base_url(spec.scheme, host, port)
    url = instance_url(origin, spec.path)
    if url is None:
        # Specs are validated on save; one stored before that could still say `//host/`.
        return ProbeResult.failed(f"refused: path {spec.path!r} leaves the instance", 0.0)
    ssl: bool = spec.tls_verify if spec.scheme == Scheme.HTTPS else True
    refused_redirect = ""
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            for hop in range(MAX_REDIRECTS + 1):
                # The URL requested, not the instance, is what the guard checks: aiohttp
                # skips the (guarded) resolver for IP literals.
                check_host(url.raw_host or "")
                async with session.request(
                    spec.method,
                    url,
                    headers=dict(spec.headers),
                    allow_redirects=False,
                    ssl=ssl,
                ) as response:
                    location = response.headers.get("Location")
                    if response.status in REDIRECT_STATUSES and location:
                        target = instance_url(url, location)
                        if (
                            target is not None
                            and _same_origin(target, origin)
                            and hop < MAX_REDIRECTS
                        ):
                            url = target
                            continue
                        refused_redirect = str(target) if target is not None else location
                    body = b""
                    if spec.method != HttpMethod.HEAD:
                        body = await response.content.read(MAX_BODY_BYTES)
                    status = response.status
                    content_type = response.headers.get("Content-Type", "")
                    break
    except TimeoutError:
        return ProbeResult.failed(f"timeout after {spec.timeout_seconds:g} s", _ms(started))
    except Refused as exc:
        return ProbeResult.failed(str(exc), _ms(started))
    except aiohttp.ClientConnectorError as exc:
        reason = _connector_reason(exc)
        return ProbeResult.failed(reason, _ms(started))
    except (aiohttp.ClientError, OSError) as exc:
        return ProbeResult.failed(f"error: {type(exc).__name__}: {exc}", _ms(started))
    latency = _ms(started)
    return judge(spec, status, content_type, body, latency, refused_redirect)


def judge(
    spec: ProbeSpec,
    status: int,
    content_type: str,
    body: bytes,
    latency_ms: float,
    refused_redirect: str = "",
) -> ProbeResult:
    """Apply the spec's conditions to a response, in order of how much each one tells."""
    output: dict[str, Any] = {"http_status": status}
    document = _json(body, content_type)
    health_status = None
    failing_component = ""
    if _looks_like_health(document) or (
        isinstance(document, dict) and "health+json" in content_type
    ):
        health_status, components = _health_json(document)
        output["components"] = components
        failing_component = _worst_component(components)
    suffix = f" (redirect to {refused_redirect} not followed)" if refused_redirect else ""
    if not spec.expects(status):
        detail = f"; {failing_component}" if failing_component else ""
        return ProbeResult(
            CheckStatus.FAIL, latency_ms, f"HTTP {status}{detail}{suffix}"[:500], output
        )
    if health_status == CheckStatus.FAIL:
        return ProbeResult(
            CheckStatus.FAIL,
            latency_ms,
            f"health: fail; {failing_component}".rstrip("; ")[:500],
            output,
        )
    if spec.body_contains and spec.body_contains.encode() not in body:
        return ProbeResult(
            CheckStatus.FAIL, latency_ms, f"body lacks {spec.body_contains!r}"[:500], output
        )
    if spec.body_regex and not re.search(spec.body_regex, body.decode(errors="replace")):
        return ProbeResult(
            CheckStatus.FAIL, latency_ms, f"body does not match /{spec.body_regex}/"[:500], output
        )
    for path, op, value in spec.json_conditions:
        problem = _condition_problem(document, path, op, value)
        if problem:
            return ProbeResult(CheckStatus.FAIL, latency_ms, problem[:500], output)
    if health_status == CheckStatus.WARN:
        return ProbeResult(
            CheckStatus.WARN,
            latency_ms,
            f"health: warn; {failing_component}".rstrip("; ")[:500],
            output,
        )
    if spec.max_latency_ms is not None and latency_ms > spec.max_latency_ms:
        return ProbeResult(
            CheckStatus.WARN,
            latency_ms,
            f"slow: {latency_ms:.0f} ms > {spec.max_latency_ms} ms",
            output,
        )
    return ProbeResult(CheckStatus.PASS, latency_ms, f"HTTP {status}{suffix}"[:500], output)


def _json(body: bytes, content_type: str) -> Any:
    if "json" not in content_type or not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _looks_like_health(document: Any) -> bool:
    return (
        isinstance(document, dict) and str(document.get("status", "")).lower() in HEALTH_JSON_STATUS
    )


def _health_json(document: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    # A document without a known status says nothing about health; only its components count.
    status = HEALTH_JSON_STATUS.get(str(document.get("status", "")).lower())
    components: list[dict[str, Any]] = []
    checks = document.get("checks") or {}
    if isinstance(checks, dict):
        for name, entries in checks.items():
            for entry in entries if isinstance(entries, list) else [entries]:
                if not isinstance(entry, dict) or len(components) >= MAX_COMPONENTS:
                    continue
                components.append(
                    {
                        "name": str(name)[:100],
                        "component_id": str(entry.get("componentId", ""))[:100],
                        "status": HEALTH_JSON_STATUS.get(
                            str(entry.get("status", "")).lower(), CheckStatus.UNKNOWN
                        ),
                        "observed": _short(entry.get("observedValue")),
                        "unit": str(entry.get("observedUnit", ""))[:20],
                        "output": str(entry.get("output", ""))[:200],
                    }
                )
    return status, components


def _worst_component(components: list[dict[str, Any]]) -> str:
    for wanted in (CheckStatus.FAIL, CheckStatus.WARN):
        for component in components:
            if component["status"] == wanted:
                output = f": {component['output']}" if component["output"] else ""
                return f"component {component['name']} {wanted}{output}"
    return ""


def _short(value: Any) -> Any:
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return str(value)[:100]


def _condition_problem(document: Any, path: str, op: str, expected: Any) -> str:
    if document is None:
        return f"{path}: the body is not JSON"
    matches = compiled_jsonpath(path).find(document)
    if op == JsonOp.EXISTS:
        return "" if matches else f"{path}: not found"
    if not matches:
        return f"{path}: not found"
    actual = matches[0].value
    ok = False
    try:
        if op == JsonOp.EQUALS:
            ok = actual == expected
        elif op == JsonOp.NOT_EQUALS:
            ok = actual != expected
        elif op == JsonOp.LESS:
            ok = float(actual) < float(expected)
        elif op == JsonOp.GREATER:
            ok = float(actual) > float(expected)
        elif op == JsonOp.CONTAINS:
            ok = expected in actual
    except (TypeError, ValueError):
        ok = False
    return "" if ok else f"{path}: expected {JsonOp(op).label} {expected!r}, got {_short(actual)!r}"


def _same_origin(target: URL, origin: URL) -> bool:
    return (target.scheme, target.host, target.port) == (origin.scheme, origin.host, origin.port)


def _connector_reason(exc: aiohttp.ClientConnectorError) -> str:
    cause = exc.os_error
    refused = refused_by(exc)
    if refused is not None:
        return str(refused)
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    return f"cannot connect: {cause}"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
