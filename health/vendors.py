"""Watching external dependencies: claim the due ones, fetch their vendor's Statuspage
summary (conditionally: ETag / Last-Modified) and run our own probe, through the outbound
guard; back off on failures; publish each change of state (docs/external.md).

Level-triggered like the check scheduler: the due time lives in each VendorStatus row,
`claim_due()` leases due rows with SKIP LOCKED, `poll(id, lease)` does one round and
writes the result, the next due time and the lease release together.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog.choices import StatusSource
from catalog.models import ExternalDependency
from controlplane import outbound
from controlplane.events import publish
from health.choices import CheckStatus, ExternalEvent, ExternalState
from health.models import VendorStatus
from health.statuspage import NotASummary, PageStatus, parse, state_of, summary_url

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 5.0
# A page that has not answered this many polls in a row is unknown (stale), never
# "operational" by default.
FAILURES_BEFORE_UNKNOWN = 3
MAX_BACKOFF_SECONDS = 900
# Our probe: two failures in a row make it fail, one success makes it pass (a vendor's
# API is reached over the internet: one lost packet is not an outage).
PROBE_FAILURE_THRESHOLD = 2
PROBE_SUCCESS_THRESHOLD = 1
# Long enough for a fetch, a probe, their redirects and the write.
LEASE_SECONDS = 4 * FETCH_TIMEOUT_SECONDS + 2 * PROBE_TIMEOUT_SECONDS + 10
# A fleet watches tens of vendors, not thousands: one tick claims them all.
MAX_CLAIM = 200
SUMMARY_MAX_BYTES = 2_000_000
PROBE_MAX_BYTES = 64_000
FETCH_REDIRECTS = 3


@dataclass
class Fetch:
    """One attempt at the vendor's summary: a new page, not modified (304), or a failure."""

    page: PageStatus | None = None
    not_modified: bool = False
    error: str = ""
    etag: str = ""
    last_modified: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass
class Probe:
    passed: bool
    latency_ms: float
    reason: str


@dataclass
class Outcome:
    """What one poll did, for the task's log and the tests."""

    polled: bool = False
    changed: bool = False
    state: str = ""
    not_modified: bool = False
    events: list[int] = field(default_factory=list)


# -- claiming ----------------------------------------------------------------------------------


def ensure_rows() -> int:
    """A VendorStatus row for every watched dependency that has none yet (due now)."""
    missing = list(
        ExternalDependency.objects.exclude(status_source=StatusSource.NONE)
        .filter(vendor_status__isnull=True)
        .values_list("id", flat=True)
    )
    VendorStatus.objects.bulk_create(
        [VendorStatus(dependency_id=i) for i in missing], ignore_conflicts=True
    )
    return len(missing)


def claim_due(limit: int = MAX_CLAIM, now: datetime | None = None) -> tuple[list[int], datetime]:
    """Lease the watched dependencies that are due; rows another claimer holds are skipped."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            VendorStatus.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(next_due_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .exclude(dependency__status_source=StatusSource.NONE)
            .order_by("next_due_at")
            .values_list("id", flat=True)[:limit]
        )
        VendorStatus.objects.filter(id__in=ids).update(lease_until=lease)
    return ids, lease


def poll_now(dependency: ExternalDependency) -> Outcome:
    """Poll this dependency right now, in this process (tests, demos, the CLI)."""
    ensure_rows()
    now = timezone.now()
    lease = now + timedelta(seconds=LEASE_SECONDS)
    with transaction.atomic():
        taken = (
            VendorStatus.objects.filter(dependency=dependency)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(lease_until=lease)
        )
    if not taken:
        return Outcome()  # another worker is polling it right now
    row = VendorStatus.objects.get(dependency=dependency)
    return poll(row.pk, lease)


# -- one round ---------------------------------------------------------------------------------


def poll(status_id: int, lease: datetime | None = None) -> Outcome:
    """Fetch, probe and write one dependency held by `lease` (any live lease when None)."""
    held = {"lease_until": lease} if lease is not None else {"lease_until__gte": timezone.now()}
    row = VendorStatus.objects.select_related("dependency").filter(id=status_id, **held).first()
    if row is None:
        return Outcome()  # gone, or claimed by another worker since (a redelivered message)
    dependency = row.dependency
    fetch = fetch_summary(dependency, row) if _uses_page(dependency) else None
    probe = run_probe(dependency) if dependency.probe_url else None
    with transaction.atomic():
        current = VendorStatus.objects.select_for_update().filter(pk=row.pk, **held).first()
        if current is None:
            logger.warning("vendor status %s lost its lease while polling", row.pk)
            return Outcome()
        current.dependency = dependency
        return _write(current, fetch, probe)


def _uses_page(dependency: ExternalDependency) -> bool:
    return dependency.status_source == StatusSource.STATUSPAGE and bool(dependency.status_page_url)


def fetch_summary(dependency: ExternalDependency, row: VendorStatus) -> Fetch:
    """GET <base>/api/v2/summary.json with the validators of the last answer."""
    headers = {"Accept": "application/json", "User-Agent": "signalbox-status-poller"}
    if row.etag:
        headers["If-None-Match"] = row.etag
    if row.last_modified:
        headers["If-Modified-Since"] = row.last_modified
    try:
        reply = outbound.request(
            "GET",
            summary_url(dependency.status_page_url),
            timeout=FETCH_TIMEOUT_SECONDS,
            headers=headers,
            max_redirects=FETCH_REDIRECTS,
            max_bytes=SUMMARY_MAX_BYTES,
        )
    except (outbound.Refused, httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return Fetch(error=_error(exc))
    if reply.status_code == 304:
        return Fetch(not_modified=True, etag=row.etag, last_modified=row.last_modified)
    if not reply.ok:
        return Fetch(error=f"HTTP {reply.status_code}: {outbound.excerpt(reply.text, 120)}")
    try:
        page = parse(reply.json())
    except (ValueError, NotASummary) as exc:
        return Fetch(error=f"not a Statuspage summary: {exc}"[:300])
    return Fetch(
        page=page,
        etag=reply.headers.get("ETag", ""),
        last_modified=reply.headers.get("Last-Modified", ""),
    )


def run_probe(dependency: ExternalDependency) -> Probe:
    """One GET of the probe URL; passes when it answers the expected status."""
    started = time.perf_counter()
    try:
        reply = outbound.request(
            "GET", dependency.probe_url, timeout=PROBE_TIMEOUT_SECONDS, max_bytes=PROBE_MAX_BYTES
        )
    except (outbound.Refused, httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return Probe(False, _ms(started), _error(exc))
    latency = _ms(started)
    if reply.status_code != dependency.probe_expected_status:
        expected = dependency.probe_expected_status
        return Probe(False, latency, f"HTTP {reply.status_code}, expected {expected}")
    return Probe(True, latency, f"HTTP {reply.status_code}")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _error(exc: BaseException) -> str:
    refused = outbound.refused_by(exc)
    if refused is not None:
        return str(refused)[:300]
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"[:300]


# -- writing -----------------------------------------------------------------------------------


def _write(row: VendorStatus, fetch: Fetch | None, probe: Probe | None) -> Outcome:
    now = timezone.now()
    dependency = row.dependency
    previous = row.state
    if probe is not None:
        _apply_probe(row, probe, now)
    if fetch is not None:
        _apply_fetch(row, fetch, now)
    elif dependency.status_source == StatusSource.PROBE:
        _state_from_probe(row)
    if row.state != previous:
        row.state_since = now
    if row.source == StatusSource.STATUSPAGE and row.state == ExternalState.OPERATIONAL:
        row.page_operational_since = row.page_operational_since or now
    else:
        row.page_operational_since = None
    row.next_due_at = now + timedelta(seconds=next_delay(dependency, row.failures))
    row.lease_until = None
    row.save()
    outcome = Outcome(
        polled=True,
        changed=row.state != previous,
        state=row.state,
        not_modified=bool(fetch and fetch.not_modified),
    )
    if outcome.changed:
        outcome.events.append(_announce(row, previous).pk)
    return outcome


def _apply_fetch(row: VendorStatus, fetch: Fetch, now: datetime) -> None:
    row.source = StatusSource.STATUSPAGE
    if fetch.failed:
        row.failures += 1
        row.last_error = fetch.error
        if row.failures >= FAILURES_BEFORE_UNKNOWN:
            row.state = ExternalState.UNKNOWN
            row.summary = (
                f"their status page has not answered {row.failures} polls in a row: {fetch.error}"
            )[:300]
        return
    row.failures = 0
    row.last_error = ""
    row.fetched_at = now
    row.etag, row.last_modified = fetch.etag, fetch.last_modified
    page = fetch.page or PageStatus(
        row.indicator, row.indicator_description, row.components, row.incidents, row.maintenances
    )  # a 304: the page we have, mapped again (the mapping may have changed since)
    state, summary = state_of(page, list(row.dependency.status_components))
    row.state, row.summary = state, summary[:300]
    row.indicator, row.indicator_description = page.indicator, page.description[:200]
    row.components, row.incidents, row.maintenances = (
        page.components,
        page.incidents,
        page.maintenances,
    )


def _apply_probe(row: VendorStatus, probe: Probe, now: datetime) -> None:
    row.probe_latency_ms = probe.latency_ms
    row.probe_reason = probe.reason[:300]
    row.probe_checked_at = now
    if probe.passed:
        row.probe_successes, row.probe_failures = row.probe_successes + 1, 0
        if row.probe_successes >= PROBE_SUCCESS_THRESHOLD:
            row.probe_status = CheckStatus.PASS
            row.probe_failing_since = None
    else:
        row.probe_successes, row.probe_failures = 0, row.probe_failures + 1
        if row.probe_failures >= PROBE_FAILURE_THRESHOLD and row.probe_status != CheckStatus.FAIL:
            row.probe_status = CheckStatus.FAIL
            row.probe_failing_since = now
    if not row.probe_status:
        row.probe_status = CheckStatus.UNKNOWN


def _state_from_probe(row: VendorStatus) -> None:
    row.source = StatusSource.PROBE
    latency = f" in {row.probe_latency_ms:.0f} ms" if row.probe_latency_ms is not None else ""
    if row.probe_status == CheckStatus.PASS:
        row.state, row.summary = (
            ExternalState.OPERATIONAL,
            f"our probe passes ({row.probe_reason}{latency})",
        )
    elif row.probe_status == CheckStatus.FAIL:
        row.state, row.summary = ExternalState.MAJOR_OUTAGE, f"our probe fails: {row.probe_reason}"
    else:
        row.state, row.summary = (
            ExternalState.UNKNOWN,
            f"our probe has not settled yet: {row.probe_reason}",
        )
    row.summary = row.summary[:300]


def next_delay(dependency: ExternalDependency, failures: int) -> float:
    """The interval, jittered by up to 10%; after failures, exponential backoff with equal
    jitter (half fixed, half random), capped, so a vendor's outage is not met by a herd."""
    interval = float(dependency.status_interval_seconds)
    if failures <= 0:
        return interval * random.uniform(0.9, 1.0)
    delay = min(interval * 2.0 ** min(failures, 16), float(MAX_BACKOFF_SECONDS))
    return delay / 2 + random.uniform(0, delay / 2)


def _announce(row: VendorStatus, previous: str) -> Any:
    dependency = row.dependency
    payload = {
        "dependency": dependency.slug,
        "state": row.state,
        "previous": previous,
        "source": row.source or dependency.status_source,
        "summary": row.summary,
        "vendor_indicator": row.indicator or None,
        "our_probe": row.probe_status or None,
    }
    return publish(
        ExternalEvent.STATUS_CHANGED,
        subject=dependency,
        message=f"{dependency.slug}: {previous} -> {row.state} ({row.summary})",
        payload=json.loads(json.dumps(payload)),
    )
