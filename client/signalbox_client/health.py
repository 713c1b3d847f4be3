"""The standard health endpoint: `application/health+json` (draft-inadarei-api-health-check).

`Health` runs named checks and builds the document; `HealthASGI` and `HealthWSGI` serve
it at /health in front of any ASGI or WSGI application (or alone).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signalbox_client.client import Signalbox

CONTENT_TYPE = "application/health+json"
PASS, WARN, FAIL = "pass", "warn", "fail"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}

# A check returns True/False, "pass"/"warn"/"fail", or a dict with at least "status"
# (and any of the draft's fields: observedValue, observedUnit, output, componentType...).
Check = Callable[[], Any]


class Health:
    """A service's health: the worst of its checks, with each check's details."""

    def __init__(
        self,
        *,
        service_id: str | None = None,
        version: str | None = None,
        release_id: str | None = None,
        description: str | None = None,
        checks: Mapping[str, Check] | None = None,
        circuits: Signalbox | None = None,
    ) -> None:
        self.service_id = service_id
        self.version = version
        self.release_id = release_id
        self.description = description
        self.checks: dict[str, Check] = dict(checks or {})
        self.circuits = circuits

    def add_check(self, name: str, check: Check) -> None:
        """`name` as the draft has it: "component:measurement", e.g. "postgres:connections"."""
        self.checks[name] = check

    def run(self) -> tuple[int, dict[str, Any]]:
        """Run every check (async ones in a fresh loop) and answer (HTTP status, document)."""
        results = {name: _guarded(check) for name, check in self.checks.items()}
        return self._document(results)

    async def run_async(self) -> tuple[int, dict[str, Any]]:
        """Run every check without blocking the event loop (sync checks go to a thread)."""
        names = list(self.checks)
        outcomes = await asyncio.gather(*(_guarded_async(self.checks[n]) for n in names))
        return self._document(dict(zip(names, outcomes, strict=True)))

    def _document(self, results: dict[str, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        now = datetime.now(UTC).isoformat()
        checks: dict[str, list[dict[str, Any]]] = {}
        for name, result in results.items():
            checks[name] = [{"time": now, **result}]
        if self.circuits is not None:
            for name, state in self.circuits.circuit_states().items():
                # An open circuit means a dependency is failing and this instance is coping:
                # warn, never fail (failing would pull healthy instances out of rotation).
                status = PASS if state in ("closed", "disabled", "metrics_only") else WARN
                checks[f"circuit:{name}"] = [
                    {
                        "componentType": "circuit",
                        "status": status,
                        "observedValue": state,
                        "time": now,
                    }
                ]
        worst = max((_RANK[c[0]["status"]] for c in checks.values()), default=0)
        status = [PASS, WARN, FAIL][worst]
        document: dict[str, Any] = {"status": status}
        for key, value in (
            ("serviceId", self.service_id),
            ("version", self.version),
            ("releaseId", self.release_id),
            ("description", self.description),
        ):
            if value:
                document[key] = value
        if checks:
            document["checks"] = checks
        return (503 if status == FAIL else 200), document


def _normalise(value: Any) -> dict[str, Any]:
    if isinstance(value, bool) or value is None:
        return {"status": PASS if value or value is None else FAIL}
    if isinstance(value, str):
        return {
            "status": value if value in _RANK else FAIL,
            **({} if value in _RANK else {"output": value}),
        }
    if isinstance(value, Mapping):
        result = dict(value)
        if result.get("status") not in _RANK:
            result["status"] = FAIL
            result.setdefault("output", "the check returned no valid status")
        return result
    return {"status": FAIL, "output": f"the check returned {type(value).__name__}"}


def _guarded(check: Check) -> dict[str, Any]:
    try:
        value = check()
        if inspect.isawaitable(value):
            value = asyncio.run(_await(value))
        return _normalise(value)
    except Exception as exc:  # a check that raises is a failing check, not a broken endpoint
        return {"status": FAIL, "output": f"{type(exc).__name__}: {exc}"}


async def _await(value: Awaitable[Any]) -> Any:
    return await value


async def _guarded_async(check: Check) -> dict[str, Any]:
    try:
        if inspect.iscoroutinefunction(check):
            value = await check()
        else:
            value = await asyncio.to_thread(check)
            if inspect.isawaitable(value):
                value = await value
        return _normalise(value)
    except Exception as exc:
        return {"status": FAIL, "output": f"{type(exc).__name__}: {exc}"}


def _body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


ASGIApp = Callable[
    [
        dict[str, Any],
        Callable[[], Awaitable[dict[str, Any]]],
        Callable[[dict[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


class HealthASGI:
    """Answers GET/HEAD `path` with the health document; everything else goes to `app`."""

    def __init__(self, app: ASGIApp | None, health: Health, path: str = "/health") -> None:
        self.app = app
        self.health = health
        self.path = path

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope.get("path") == self.path
            and scope.get("method") in ("GET", "HEAD")
        ):
            status, document = await self.health.run_async()
            await _send(send, status, CONTENT_TYPE, _body(document), head=scope["method"] == "HEAD")
            return
        if self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            await _send(send, 404, "text/plain", b"not found\n", head=False)


async def _send(send: Any, status: int, content_type: str, body: bytes, *, head: bool) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"cache-control", b"no-store"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_REASONS = {200: "200 OK", 404: "404 Not Found", 503: "503 Service Unavailable"}


class HealthWSGI:
    """Answers GET/HEAD `path` with the health document; everything else goes to `app`."""

    def __init__(self, app: WSGIApp | None, health: Health, path: str = "/health") -> None:
        self.app = app
        self.health = health
        self.path = path

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if environ.get("PATH_INFO") == self.path and method in ("GET", "HEAD"):
            status, document = self.health.run()
            body = _body(document)
            start_response(
                _REASONS[status],
                [
                    ("Content-Type", CONTENT_TYPE),
                    ("Cache-Control", "no-store"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [b"" if method == "HEAD" else body]
        if self.app is not None:
            return self.app(environ, start_response)
        start_response(_REASONS[404], [("Content-Type", "text/plain")])
        return [b"not found\n"]
