"""The control plane's own Prometheus metrics: requests, queue depths, live clients."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "signalbox_http_requests_total",
    "HTTP requests answered, by method, view and status class.",
    ["method", "view", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "signalbox_http_request_duration_seconds",
    "Time to answer an HTTP request, by view.",
    ["view"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
QUEUE_DEPTH = Gauge(
    "signalbox_celery_queue_depth",
    "Messages waiting in each Celery queue.",
    ["queue"],
    registry=REGISTRY,
)
LIVE_CLIENTS = Gauge(
    "signalbox_live_clients",
    "Dashboard websocket clients connected, across all web processes.",
    registry=REGISTRY,
)
QUEUES = ("probes", "rollouts", "notify", "default")


class RequestMetricsMiddleware:
    """Counts every request by its URL name (never the raw path: unbounded labels)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match is not None and match.view_name else "unmatched"
        REQUESTS.labels(request.method or "", view, f"{response.status_code // 100}xx").inc()
        LATENCY.labels(view).observe(time.perf_counter() - started)
        return response


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; queue depths and live clients are read at scrape time."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1)
    try:
        for queue in QUEUES:
            QUEUE_DEPTH.labels(queue).set(client.llen(queue))
        from controlplane.live import connected_clients

        LIVE_CLIENTS.set(connected_clients())
    except redis.RedisError:
        pass  # the scrape still answers; /readyz is where Redis being down shows
    finally:
        client.close()
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
