"""The control plane's own Prometheus metrics: this process's requests, and what apps
register to be read at scrape time (health, rollouts, incidents, the outbox, queues, live
clients). The label sets are documented in docs/operations.md ("Metrics")."""

from __future__ import annotations

import bisect
import hmac
import itertools
import logging
import time
from collections import Counter as Counter_
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CollectorRegistry, Counter, Histogram, Metric, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
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


# --- Scrape-time sources ---------------------------------------------------------------------
#
# Facts that live in PostgreSQL or Redis (health states, rollouts, the outbox, queue depths)
# are read when Prometheus scrapes, by sources that apps register in their AppConfig.ready:
# the spine names no app. A source returns metric families; one that raises is reported as
# down (signalbox_metrics_source_up) and its families are left out, the rest still answer.
# Each source must run a fixed number of queries, whatever the size of the fleet.

Source = Callable[[], Iterable[Metric]]
_SOURCES: dict[str, Source] = {}


def register(name: str, source: Source) -> None:
    """Read `source` at every scrape of /metrics, under `name` in signalbox_metrics_source_up.

    Registering a name again replaces its source (a reloaded app config, a test)."""
    _SOURCES[name] = source


def sources() -> dict[str, Source]:
    return dict(_SOURCES)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    """A gauge family for a source to fill with add_metric(label values, value)."""
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def collect_sources() -> list[Metric]:
    """Every registered source's families, plus whether each answered and how long it took."""
    families: list[Metric] = []
    up = gauge(
        "signalbox_metrics_source_up",
        "1 when the scrape could read the source, 0 when it could not (see the web log).",
        ["source"],
    )
    took = gauge(
        "signalbox_metrics_source_duration_seconds",
        "Time this scrape spent reading each source.",
        ["source"],
    )
    for name, source in sources().items():
        started = time.perf_counter()
        try:
            read = list(source())
        except Exception:  # a broken source must not blank the whole scrape
            logger.warning("metrics: source %s could not be read", name, exc_info=True)
            up.add_metric([name], 0)
        else:
            families.extend(read)
            up.add_metric([name], 1)
        took.add_metric([name], time.perf_counter() - started)
    return [*families, up, took]


class _Scrape:
    """The process's own metrics plus this scrape's sources, for one encoder call: nothing
    read at scrape time is kept in shared state, so concurrent scrapes cannot mix."""

    def __init__(self, extra: list[Metric]) -> None:
        self.extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self.extra


# --- Histograms shared by every process, kept in Redis ----------------------------------------


class SharedHistogram:
    """A Prometheus histogram whose counts live in one Redis hash, so what Celery workers
    observe is exposed by any web process's /metrics.

    Counts only grow (HINCRBY); Prometheus treats a Redis flush as a counter reset. Label
    values must come from a small fixed set (choices), never from user input.
    """

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self.key = f"signalbox:metrics:{name}"

    def observe_many(self, observations: Iterable[tuple[Sequence[str], float]]) -> None:
        """Add (label values, value) observations in one round trip; Redis errors propagate."""
        counts: Counter_[str] = Counter_()
        sums: dict[tuple[str, ...], float] = defaultdict(float)
        for label_values, value in observations:
            series = tuple(label_values)
            counts[_field(series, f"b{bisect.bisect_left(self.buckets, value)}")] += 1
            sums[series] += value
        if not counts:
            return
        pipe = redis_clients.client().pipeline(transaction=False)
        for field, count in counts.items():
            pipe.hincrby(self.key, field, count)
        for series, total in sums.items():
            pipe.hincrbyfloat(self.key, _field(series, "sum"), total)
        pipe.execute()

    def collect(self) -> HistogramMetricFamily:
        """The histogram as it stands in Redis: one HGETALL."""
        raw = redis_clients.client().hgetall(self.key)
        per_bucket: dict[tuple[str, ...], list[float]] = {}
        totals: dict[tuple[str, ...], float] = {}
        for field, value in raw.items():
            *label_values, part = _text(field).split("\t")
            series = tuple(label_values)
            if len(series) != len(self.labels):
                continue  # written under another label set: ignore rather than mislabel
            counts = per_bucket.setdefault(series, [0.0] * (len(self.buckets) + 1))
            if part == "sum":
                totals[series] = float(value)
            elif part.startswith("b") and part[1:].isdigit() and int(part[1:]) < len(counts):
                counts[int(part[1:])] = float(value)
        family = HistogramMetricFamily(self.name, self.documentation, labels=list(self.labels))
        bounds = [*(repr(float(b)) for b in self.buckets), "+Inf"]
        for series in sorted(per_bucket):
            cumulative = list(itertools.accumulate(per_bucket[series]))
            family.add_metric(
                list(series), list(zip(bounds, cumulative, strict=True)), totals.get(series, 0.0)
            )
        return family


def _field(label_values: tuple[str, ...], part: str) -> str:
    """A hash field: the series' label values and the part (bN: bucket N, sum), tab-joined."""
    return "\t".join([*label_values, part])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- The spine's own sources: the broker's queues and the live layer's clients ----------------


def queue_depths() -> Iterator[Metric]:
    """Messages waiting in each Celery queue, read from the broker (Redis lists)."""
    url = settings.CELERY_BROKER_URL
    if urlparse(url).scheme not in {"redis", "rediss", "unix"}:
        return  # other brokers report depth themselves (RabbitMQ's own exporter)
    client = redis_clients.client(url, timeout=1)
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        for suffix in _PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
    lengths = pipe.execute()
    family = gauge(
        "signalbox_celery_queue_depth",
        "Messages waiting in each Celery queue (all priorities), read from the broker at scrape.",
        ["queue"],
    )
    per_queue = len(_PRIORITY_SUFFIXES)
    for index, queue in enumerate(QUEUES):
        family.add_metric([queue], sum(lengths[index * per_queue : (index + 1) * per_queue]))
    yield family


def live_clients() -> Iterator[Metric]:
    from controlplane.live import connected_clients

    family = gauge(
        "signalbox_live_clients",
        "Dashboard websocket clients connected, across all web processes.",
    )
    family.add_metric([], connected_clients())
    yield family


register("broker", queue_depths)
register("live", live_clients)


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; the registered sources are read at scrape time.

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
    scrape = _Scrape(collect_sources())
    # Text format 0.0.4 unless the scraper asks for OpenMetrics or text 1.0.0.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(scrape), content_type=content_type)
