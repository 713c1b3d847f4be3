"""One OTLP request's spans, checked against the token and the catalog, into edges."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from django.db import transaction
from redis.exceptions import RedisError

from catalog.choices import Scope
from catalog.models import ApiToken, Environment, ExternalDependency, Service
from controlplane import redis as redis_clients
from topology.ingest import metrics
from topology.ingest.decode import KIND_CLIENT, KIND_PRODUCER, ResourceSpans
from topology.ingest.edges import STATS_KEY, Batch, Half, flush, half_of, match

# The catalog as the ingest needs it, per process: read again after this long, or at once
# (at most once a second) when a request names a service or environment it does not know.
CATALOG_SECONDS = 30.0
_MISS_RELOAD_SECONDS = 1.0


logger = logging.getLogger(__name__)

# Bumped (after commit) whenever a service, environment or external dependency changes in
# any process; a web process whose cached catalog is of another generation reads it again,
# so a re-created environment never leaves ids behind that the upsert would refuse.
GENERATION_KEY = "signalbox:topology:catalog-generation"


@dataclass(frozen=True)
class _Catalog:
    services: dict[str, tuple[int, int]]  # slug -> (team id, service id)
    environments: dict[str, int]
    externals: frozenset[str]
    loaded_at: float
    generation: bytes | None = None


def catalog_changed(**_: object) -> None:
    """Receiver of the catalog models' saves and deletes: every process reloads."""
    transaction.on_commit(_bump)


def _bump() -> None:
    try:
        redis_clients.client().incr(GENERATION_KEY)
    except RedisError:  # a catalog change never fails for this; caches expire by age anyway
        logger.warning("trace ingest: could not tell the web processes the catalog changed")


def _generation() -> bytes | None:
    value: bytes | None = redis_clients.client().get(GENERATION_KEY)  # type: ignore[assignment]
    return value


_catalog: _Catalog | None = None
_lock = threading.Lock()


def _load(generation: bytes | None) -> _Catalog:
    return _Catalog(
        services={
            slug: (team, pk)
            for slug, team, pk in Service.objects.values_list("slug", "team_id", "pk")
        },
        environments=dict(Environment.objects.values_list("slug", "pk")),
        externals=frozenset(ExternalDependency.objects.values_list("slug", flat=True)),
        loaded_at=time.monotonic(),
        generation=generation,
    )


def catalog(*, missing: bool = False) -> _Catalog:
    """The cached catalog; `missing`: a name was not in it, so read it again if allowed."""
    global _catalog
    now = time.monotonic()
    found = _catalog
    generation = _generation()
    stale = (
        found is None
        or now - found.loaded_at > CATALOG_SECONDS
        or found.generation != generation
    )
    if missing and found is not None and now - found.loaded_at > _MISS_RELOAD_SECONDS:
        stale = True
    if stale:
        with _lock:
            if _catalog is found:
                _catalog = _load(generation)
            found = _catalog
    assert found is not None
    return found


def forget_catalog() -> None:
    """Drop the cached catalog: read it again at the next request (a batch named an
    environment that is gone; tests that change the catalog between requests)."""
    global _catalog
    _catalog = None


@dataclass
class Outcome:
    accepted: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    rows: int = 0

    @property
    def message(self) -> str:
        return "; ".join(self.reasons[:5]) + (
            f"; and {len(self.reasons) - 5} more" if len(self.reasons) > 5 else ""
        )


def _why_not(token: ApiToken, slug: str, known: _Catalog) -> str | None:
    if not slug:
        return "a resource has no service.name"
    found = known.services.get(slug)
    if found is None:
        return f"service.name {slug!r} is not a service in the catalog"
    team_id, service_id = found
    if not token.has_scope(Scope.REPORT):
        return "the token has no report scope"
    if team_id != token.team_id:
        return f"service {slug!r} belongs to another team than the token's"
    if token.service_id is not None and token.service_id != service_id:
        return f"the token may only report for its own service, not {slug!r}"
    return None


def ingest(resources: list[ResourceSpans], token: ApiToken) -> Outcome:
    """Pair, aggregate and store the spans the token may send; say why the rest were not."""
    outcome = Outcome()
    known = catalog()
    if any(
        (r.service and r.service not in known.services)
        or (r.environment and r.environment not in known.environments)
        or _why_not(token, r.service, known) is not None
        for r in resources
    ):
        known = catalog(missing=True)  # a service new, or moved to another team, since
    halves: list[tuple[bytes, Half]] = []
    for resource in resources:
        count = len(resource.spans) + resource.other_spans
        if not count:
            continue
        reason = _why_not(token, resource.service, known)
        if reason is not None:
            outcome.rejected += count
            if reason not in outcome.reasons:
                outcome.reasons.append(reason)
            continue
        outcome.accepted += count
        environment_id = known.environments.get(resource.environment)
        service = resource.service
        for span in resource.spans:
            if span.kind == KIND_CLIENT or span.kind == KIND_PRODUCER:
                key = span.trace_id + span.span_id
            elif span.parent_id:
                key = span.trace_id + span.parent_id
            else:
                continue  # a root server span: nobody called it that we could know
            halves.append((key, half_of(span, service, environment_id)))
    batch = Batch()
    match(
        halves,
        batch,
        received=outcome.accepted,
        rejected=outcome.rejected,
        lookup=(known.services.keys(), known.externals),
    )
    outcome.rows = flush(batch)
    if outcome.rows < len(batch.rows):
        # A row named an environment that is gone: read the catalog again next time, in
        # case it was this process's cached ids and not only a half that waited.
        forget_catalog()
    metrics.SPANS.labels("accepted").inc(outcome.accepted)
    metrics.SPANS.labels("rejected").inc(outcome.rejected)
    metrics.PAIRED.inc(batch.paired)
    metrics.EXPIRED.inc(batch.expired)
    metrics.VIRTUAL.inc(batch.virtual)
    return outcome


def sweep() -> int:
    """Take out the halves whose wait is over even when no spans arrive (a beat task);
    returns how many expired."""
    known = catalog()
    batch = Batch()
    match((), batch, lookup=(known.services.keys(), known.externals))
    flush(batch)
    metrics.EXPIRED.inc(batch.expired)
    metrics.VIRTUAL.inc(batch.virtual)
    return batch.expired


def stats() -> dict[str, int]:
    """Counters across all web processes since Redis started (the API shows them)."""
    raw: dict[bytes, bytes] = redis_clients.client().hgetall(STATS_KEY)  # type: ignore[assignment]
    values = {k.decode(): int(v) for k, v in raw.items()}
    return {
        name: values.get(name, 0)
        for name in ("spans_received", "spans_rejected", "pairs_after_wait", "unpaired_expired")
    }
