"""The control plane's own Prometheus metrics: requests, queue depths, live clients."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import redis
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder

from controlplane import redis as redis_clients

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # this process's CPU, memory and open files
REQUESTS = Counter(
    "signalbox_http_requests_total",
    "HTTP requests answered by this web process, by method, view and status class.",
    ["method", "view", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "signalbox_http_request_duration_seconds",
    "Time this web process took to answer an HTTP request, by view.",
    ["view"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
QUEUE_DEPTH = Gauge(
    "signalbox_celery_queue_depth",
    "Messages waiting in each Celery queue (all priorities), read from the broker at scrape.",
    ["queue"],
    registry=REGISTRY,
)
LIVE_CLIENTS = Gauge(
    "signalbox_live_clients",
    "Dashboard websocket clients connected, across all web processes.",
    registry=REGISTRY,
)
SOURCE_UP = Gauge(
    "signalbox_metrics_source_up",
    "1 when the scrape could read its source (broker, live), 0 when it could not.",
    ["source"],
    registry=REGISTRY,
)
QUEUES = ("probes", "rollouts", "notify", "default")
# Celery's Redis transport keeps priorities 3, 6 and 9 in lists of their own: "name\x06\x163".
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


class RequestMetricsMiddleware:
    """Counts every request by its URL name (never the raw path: unbounded labels).

    Async-capable: a sync-only middleware would push every request, held long-polls too,
    through Django's one thread-sensitive worker thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._count(request, response, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await self.get_response(request)
        self._count(request, response, started)
        return response  # type: ignore[no-any-return]

    @staticmethod
    def _count(request: HttpRequest, response: HttpResponse, started: float) -> None:
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match is not None and match.view_name else "unmatched"
        REQUESTS.labels(request.method or "", view, f"{response.status_code // 100}xx").inc()
        LATENCY.labels(view).observe(time.perf_counter() - started)


def read_queue_depths() -> None:
    """Set the queue depth gauges from the broker; leave none behind when it cannot answer."""
    url = settings.CELERY_BROKER_URL
    if urlparse(url).scheme not in {"redis", "rediss", "unix"}:
        return  # other brokers report depth themselves (RabbitMQ's own exporter)
    client = redis_clients.client(url, timeout=1)
    try:
        pipe = client.pipeline(transaction=False)
        for queue in QUEUES:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
        lengths = pipe.execute()
    except redis.RedisError:
        QUEUE_DEPTH.clear()
        SOURCE_UP.labels("broker").set(0)
        logger.warning("metrics: could not read queue depths from the broker", exc_info=True)
        return
    per_queue = len(_PRIORITY_SUFFIXES)
    for index, queue in enumerate(QUEUES):
        QUEUE_DEPTH.labels(queue).set(sum(lengths[index * per_queue : (index + 1) * per_queue]))
    SOURCE_UP.labels("broker").set(1)


def read_live_clients() -> None:
    from controlplane.live import connected_clients

    try:
        LIVE_CLIENTS.set(connected_clients())
        SOURCE_UP.labels("live").set(1)
    except redis.RedisError:
        SOURCE_UP.labels("live").set(0)
        logger.warning("metrics: could not count live clients", exc_info=True)


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; queue depths and live clients are read at scrape time.

    Request counters are this process's own: scrape every web process (docs/operations.md).
    """
    token = settings.SIGNALBOX_METRICS_TOKEN
    if token:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
            response = HttpResponse(
                "401: send the metrics token as 'Authorization: Bearer <token>'\n",
                status=401,
                content_type="text/plain",
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    read_queue_depths()
    read_live_clients()
    # Text format 0.0.4 unless the scraper asks for OpenMetrics or text 1.0.0.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(REGISTRY), content_type=content_type)
