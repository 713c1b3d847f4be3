"""/healthz, /readyz and /metrics: what an orchestrator and Prometheus see."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.test import Client

from controlplane.tests.conftest import RedisServer

pytestmark = pytest.mark.django_db

HEALTH_JSON = "application/health+json"


def test_healthz_passes_without_touching_anything(client: Client, settings: Any) -> None:
    # given a Redis nobody listens on: liveness must not depend on it
    settings.REDIS_URL = settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == HEALTH_JSON
    assert response.json()["status"] == "pass"
    assert "no-cache" in response["Cache-Control"]


def test_readyz_passes_then_fails_naming_redis_when_it_stops(
    client: Client, settings: Any, redis_server: RedisServer
) -> None:
    # given Signalbox pointed at a Redis of this test's own
    settings.REDIS_URL = settings.CELERY_BROKER_URL = redis_server.url
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready["Content-Type"] == HEALTH_JSON
    body = ready.json()
    assert body["status"] == "pass"
    assert {name: entries[0]["status"] for name, entries in body["checks"].items()} == {
        "postgresql:responseTime": "pass",
        "redis:responseTime": "pass",
        "broker:responseTime": "pass",
        "migrations:applied": "pass",
        "staticfiles:manifest": "pass",
        "templates:render": "pass",
    }
    # when that Redis stops
    redis_server.stop()
    started = time.monotonic()
    not_ready = client.get("/readyz")
    # then readiness fails at once, saying which dependency and why
    assert time.monotonic() - started < 3
    assert not_ready.status_code == 503
    assert not_ready["Content-Type"] == HEALTH_JSON
    body = not_ready.json()
    assert body["status"] == "fail"
    assert body["checks"]["postgresql:responseTime"][0]["status"] == "pass"
    for name in ["redis:responseTime", "broker:responseTime"]:
        assert body["checks"][name][0]["status"] == "fail"
        assert "ConnectionError" in body["checks"][name][0]["output"]


def test_readyz_tells_the_broker_apart_from_redis(
    client: Client, settings: Any, redis_server: RedisServer
) -> None:
    settings.CELERY_BROKER_URL = redis_server.url
    redis_server.stop()
    body = client.get("/readyz").json()
    assert body["checks"]["redis:responseTime"][0]["status"] == "pass"
    assert body["checks"]["broker:responseTime"][0]["status"] == "fail"


def sample(exposition: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", exposition, re.MULTILINE)
    assert match, f"{name} is not exposed"
    return float(match.group(1))


def test_metrics_expose_requests_queue_depths_and_live_clients(
    client: Client, settings: Any, redis_server: RedisServer
) -> None:
    # given a broker with work waiting (one message at priority 6) and two live pages
    settings.REDIS_URL = settings.CELERY_BROKER_URL = redis_server.url
    broker = redis_server.client()
    broker.lpush("probes", "m1", "m2", "m3")
    broker.lpush("probes\x06\x166", "m4")
    broker.lpush("notify", "m5")
    broker.zadd("signalbox:live:clients", {"page-a": time.time(), "page-b": time.time()})
    client.get("/healthz")
    # when Prometheus scrapes
    response = client.get("/metrics")
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    assert sample(text, 'signalbox_celery_queue_depth{queue="probes"}') == 4
    assert sample(text, 'signalbox_celery_queue_depth{queue="notify"}') == 1
    assert sample(text, 'signalbox_celery_queue_depth{queue="rollouts"}') == 0
    assert sample(text, "signalbox_live_clients") == 2
    assert (
        sample(text, 'signalbox_http_requests_total{method="GET",status="2xx",view="healthz"}') >= 1
    )
    assert "signalbox_http_request_duration_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text


def test_metrics_still_answer_when_the_broker_is_down(
    client: Client, settings: Any, redis_server: RedisServer
) -> None:
    settings.REDIS_URL = settings.CELERY_BROKER_URL = redis_server.url
    redis_server.client().lpush("probes", "m1")
    client.get("/metrics")
    redis_server.stop()
    text = client.get("/metrics").content.decode()
    assert sample(text, 'signalbox_metrics_source_up{source="broker"}') == 0
    assert 'signalbox_celery_queue_depth{queue="probes"}' not in text  # no stale depth


def test_live_clients_not_heard_from_are_not_counted(
    settings: Any, redis_server: RedisServer
) -> None:
    from controlplane import live

    settings.REDIS_URL = redis_server.url
    redis_server.client().zadd(
        live.CLIENTS_KEY,
        {"pinged-just-now": time.time(), "process-died": time.time() - live.CLIENT_TTL_SECONDS - 1},
    )
    assert live.connected_clients() == 1


def test_metrics_want_the_token_when_one_is_set(client: Client, settings: Any) -> None:
    settings.SIGNALBOX_METRICS_TOKEN = "s3cret-scrape-token"
    # without it, or with a wrong one, Prometheus is told what to send
    token = "s3cret-scrape-token"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert "signalbox_" not in response.content.decode()
    # with it, the metrics
    response = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert response.status_code == 200
    assert "signalbox_http_requests_total" in response.content.decode()
