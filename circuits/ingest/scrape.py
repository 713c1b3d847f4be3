"""Scraping: claim due targets, read them concurrently in one event loop, store in one batch.

A Hystrix stream never ends, so a scrape reads it until every command has been seen
once more (one full round of events) or `HYSTRIX_READ_SECONDS` pass, then disconnects:
the stream is sampled on the target's schedule, like a Prometheus page.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from yarl import URL

from catalog.choices import LIVE_LIFECYCLES
from catalog.models import Instance
from circuits.choices import (
    LABEL_HYSTRIX_PATH,
    LABEL_PROMETHEUS_PATH,
    ScrapeKind,
    Source,
    TargetOrigin,
)
from circuits.ingest import hystrix, prometheus
from circuits.ingest.reports import Report
from circuits.ingest.store import StoreResult, resolve, store
from circuits.models import ScrapeTarget
from controlplane import outbound

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
HYSTRIX_READ_SECONDS = 3.0
MAX_PAGE_BYTES = 4 * 1024 * 1024
LEASE = timedelta(seconds=60)
USER_AGENT = "signalbox-circuits-scraper/1"

@dataclass
class Outcome:
    """One target's scrape: reports or an error, and the counters to keep."""

    target_id: int
    reports: list[Report] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def claim_due(limit: int = 200) -> list[int]:
    """Claim due targets (SKIP LOCKED: any number of dispatchers, none twice) and lease them."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            ScrapeTarget.objects.select_for_update(skip_locked=True)
            .filter(enabled=True, next_due_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .order_by("next_due_at")
            .values_list("id", flat=True)[:limit]
        )
        ScrapeTarget.objects.filter(id__in=ids).update(
            lease_until=now + LEASE,
            next_due_at=now + F("interval_seconds") * timedelta(seconds=1),
        )
    return ids


def scrape(target_ids: list[int]) -> StoreResult:
    """Scrape these targets now and store what they say; tolerates targets deleted meanwhile."""
    targets = list(
        ScrapeTarget.objects.select_related("service", "environment").filter(id__in=target_ids)
    )
    total = StoreResult()
    if not targets:
        return total
    outcomes = asyncio.run(_scrape_all(targets))
    kinds = {t.pk: t.kind for t in targets}
    for kind, source in (
        (ScrapeKind.PROMETHEUS, Source.PROMETHEUS),
        (ScrapeKind.HYSTRIX, Source.HYSTRIX),
    ):
        reports = [r for o in outcomes if kinds[o.target_id] == kind for r in o.reports]
        if reports:
            result = store(reports, resolve(reports), source=source, actor="scraper")
            total.accepted += result.accepted
            total.ignored += result.ignored
            total.stale += result.stale
            total.circuits += result.circuits
    _record(targets, outcomes)
    return total


async def _scrape_all(targets: list[ScrapeTarget]) -> list[Outcome]:
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS + HYSTRIX_READ_SECONDS)
    connector = aiohttp.TCPConnector(resolver=outbound.GuardedResolver(), limit=100)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, headers={"User-Agent": USER_AGENT}
    ) as session:
        return list(await asyncio.gather(*(_scrape_one(session, t) for t in targets)))


async def _scrape_one(session: aiohttp.ClientSession, target: ScrapeTarget) -> Outcome:
    outcome = Outcome(target.pk, counters=target.counters)
    at = timezone.now()
    try:
        if target.kind == ScrapeKind.HYSTRIX:
            events = await _read_hystrix(session, target.url)
            outcome.reports = [
                hystrix.to_report(
                    e,
                    service=target.service.slug,
                    environment=target.environment.slug,
                    instance_key=target.instance_key,
                    at=at,
                )
                for e in events
            ]
        else:
            text = await _read_page(session, target.url)
            breakers = prometheus.parse(text)
            outcome.reports, outcome.counters = prometheus.to_reports(
                breakers,
                previous=target.counters or {},
                service=target.service.slug,
                environment=target.environment.slug,
                instance_key=target.instance_key,
                at=at,
            )
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        refused = outbound.refused_by(exc)
        outcome.error = str(refused) if refused else f"{type(exc).__name__}: {exc}"[:500]
    return outcome


async def _read_page(session: aiohttp.ClientSession, url: str) -> str:
    outbound.check_host(URL(url).raw_host or "")  # IP literals skip the guarded resolver
    async with session.get(url, allow_redirects=False) as response:
        if response.status != 200:
            raise ValueError(f"answered HTTP {response.status}")
        body = await response.content.read(MAX_PAGE_BYTES + 1)
        if len(body) > MAX_PAGE_BYTES:
            raise ValueError(f"page larger than {MAX_PAGE_BYTES} bytes")
        return body.decode("utf-8", errors="replace")


async def _read_hystrix(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """The latest event per command, after one full round (or the read time) has passed."""
    latest: dict[str, dict[str, Any]] = {}
    rounds: dict[str, int] = {}
    deadline = time.monotonic() + HYSTRIX_READ_SECONDS
    outbound.check_host(URL(url).raw_host or "")  # IP literals skip the guarded resolver
    async with session.get(
        url, allow_redirects=False, headers={"Accept": "text/event-stream"}
    ) as response:
        if response.status != 200:
            raise ValueError(f"answered HTTP {response.status}")
        while time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(
                    response.content.readline(), timeout=deadline - time.monotonic()
                )
            except TimeoutError:
                break
            if not raw:
                break
            event = hystrix.parse_line(raw.decode("utf-8", errors="replace").strip())
            if event is None:
                continue
            name = str(event["name"])
            latest[name] = event
            rounds[name] = rounds.get(name, 0) + 1
            # A command seen twice means a full round has gone by: we have every command.
            if rounds[name] >= 2:
                break
    if not latest and time.monotonic() < deadline:
        raise ValueError("the stream ended without a HystrixCommand event")
    return list(latest.values())


def _record(targets: list[ScrapeTarget], outcomes: list[Outcome]) -> None:
    by_id = {o.target_id: o for o in outcomes}
    now = timezone.now()
    for target in targets:
        outcome = by_id[target.pk]
        target.lease_until = None
        target.last_scraped_at = now
        target.last_error = outcome.error
        target.consecutive_failures = target.consecutive_failures + 1 if outcome.error else 0
        if not outcome.error:
            target.counters = outcome.counters
        if outcome.error:
            logger.info("scrape of target %s (%s) failed: %s", target.pk, target.url, outcome.error)
    ScrapeTarget.objects.bulk_update(
        targets,
        ["lease_until", "last_scraped_at", "last_error", "consecutive_failures", "counters"],
    )


def targets_for(instance: Instance) -> dict[tuple[str, str], str]:
    """(kind, url) -> instance key for the scrape targets an instance's labels ask for."""
    labels = instance.labels if isinstance(instance.labels, dict) else {}
    wanted = {}
    for label, kind in (
        (LABEL_PROMETHEUS_PATH, ScrapeKind.PROMETHEUS),
        (LABEL_HYSTRIX_PATH, ScrapeKind.HYSTRIX),
    ):
        path = labels.get(label)
        if not isinstance(path, str) or not path:
            continue
        url = (
            path
            if path.startswith(("http://", "https://"))
            else f"http://{instance.address}/{path.lstrip('/')}"
        )
        if not outbound.refusal(url, resolve_names=False):
            wanted[(str(kind), url)] = instance.address
    return wanted


def sync_instance(instance: Instance) -> None:
    """Keep one instance's label-derived targets in step with its labels and lifecycle."""
    wanted = targets_for(instance) if instance.lifecycle in LIVE_LIFECYCLES else {}
    with transaction.atomic():
        existing = {
            (t.kind, t.url): t
            for t in ScrapeTarget.objects.filter(instance=instance, origin=TargetOrigin.LABELS)
        }
        ScrapeTarget.objects.filter(
            pk__in=[t.pk for key, t in existing.items() if key not in wanted]
        ).delete()
        ScrapeTarget.objects.bulk_create(
            [
                _label_target(kind, url, instance, key)
                for (kind, url), key in wanted.items()
                if (kind, url) not in existing
            ],
            ignore_conflicts=True,
        )


def sync_all() -> dict[str, int]:
    """Sweep: label-derived targets for every live labelled instance, none for the others."""
    labelled = Instance.objects.filter(lifecycle__in=LIVE_LIFECYCLES).filter(
        Q(labels__has_key=LABEL_PROMETHEUS_PATH) | Q(labels__has_key=LABEL_HYSTRIX_PATH)
    )
    wanted: dict[tuple[str, str], tuple[Instance, str]] = {}
    for instance in labelled.iterator():
        for key, instance_key in targets_for(instance).items():
            wanted[key] = (instance, instance_key)
    with transaction.atomic():
        existing = {
            (kind, url): pk
            for kind, url, pk in ScrapeTarget.objects.filter(
                origin=TargetOrigin.LABELS
            ).values_list("kind", "url", "pk")
        }
        removed, _ = ScrapeTarget.objects.filter(
            pk__in=[pk for key, pk in existing.items() if key not in wanted]
        ).delete()
        created = ScrapeTarget.objects.bulk_create(
            [
                _label_target(kind, url, instance, instance_key)
                for (kind, url), (instance, instance_key) in wanted.items()
                if (kind, url) not in existing
            ],
            ignore_conflicts=True,
        )
    return {"created": len(created), "removed": removed}


def _label_target(kind: str, url: str, instance: Instance, instance_key: str) -> ScrapeTarget:
    return ScrapeTarget(
        kind=kind,
        url=url,
        service_id=instance.service_id,
        environment_id=instance.environment_id,
        instance=instance,
        instance_key=instance_key,
        origin=TargetOrigin.LABELS,
        interval_seconds=settings.SIGNALBOX_CIRCUITS_SCRAPE_INTERVAL,
    )
