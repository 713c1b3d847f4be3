"""The /health helpers answer application/health+json in front of ASGI and WSGI apps."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pybreaker
import pytest
from signalbox_client import CONTENT_TYPE, Health, HealthASGI, HealthWSGI, Signalbox


def wsgi_get(app: Any, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": method}, start_response))
    return answer["status"], answer["headers"], body


def asgi_get(app: Any, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send))
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def app_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the app"]


def test_wsgi_serves_a_passing_document_and_leaves_other_paths_to_the_app() -> None:
    health = Health(
        service_id="checkout", version="1.4.2", checks={"postgres:connections": lambda: True}
    )
    app = HealthWSGI(app_wsgi, health)
    status, headers, body = wsgi_get(app, "/health")
    assert status == "200 OK" and headers["Content-Type"] == CONTENT_TYPE
    document = json.loads(body)
    assert document["status"] == "pass" and document["version"] == "1.4.2"
    assert document["checks"]["postgres:connections"][0]["status"] == "pass"
    assert wsgi_get(app, "/orders")[2] == b"the app"


def test_a_failing_or_raising_check_fails_the_instance_with_503() -> None:
    def broken() -> bool:
        raise TimeoutError("redis did not answer in 1 s")

    health = Health(
        checks={"redis:ping": broken, "disk:free": lambda: {"status": "warn", "observedValue": 91}}
    )
    status, _, body = wsgi_get(HealthWSGI(None, health), "/health")
    document = json.loads(body)
    assert status.startswith("503") and document["status"] == "fail"
    assert (
        document["checks"]["redis:ping"][0]["output"] == "TimeoutError: redis did not answer in 1 s"
    )
    assert document["checks"]["disk:free"][0]["observedValue"] == 91


def test_asgi_runs_sync_and_async_checks_without_blocking() -> None:
    async def cache() -> str:
        await asyncio.sleep(0)
        return "warn"

    app = HealthASGI(None, Health(checks={"cache:hits": cache, "db:ok": lambda: True}))
    status, headers, body = asgi_get(app, "/health")
    assert status == 200 and headers[b"content-type"] == CONTENT_TYPE.encode()
    assert json.loads(body)["status"] == "warn"
    assert asgi_get(app, "/other")[0] == 404


def test_an_open_circuit_warns_but_never_fails_the_instance() -> None:
    signalbox = Signalbox("http://127.0.0.1:1", "t", service="checkout", environment="production")
    payments = signalbox.breaker("payments", fail_max=1)
    with pytest.raises(pybreaker.CircuitBreakerError):
        payments.call(lambda: 1 / 0)
    status, document = signalbox.health().run()
    assert status == 200 and document["status"] == "warn"
    assert document["checks"]["circuit:payments"][0]["observedValue"] == "open"
