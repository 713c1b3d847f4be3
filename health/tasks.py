"""Celery entry points for health: thin, take ids, tolerate rows that no longer exist."""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task

from health import heartbeats, maintenance, rollups, scheduler, services, vendors

logger = logging.getLogger(__name__)


@shared_task(name="health.tasks.schedule_due")
def schedule_due() -> int:
    """Every second (beat): lease the checks due within the next second, enqueue them in batches."""
    claim = scheduler.claim_due()
    lease = claim.lease_until.isoformat() if claim.lease_until else None
    for start in range(0, len(claim.ids), scheduler.BATCH_SIZE):
        run_batch.delay(claim.ids[start : start + scheduler.BATCH_SIZE], lease)
    return len(claim.ids)


@shared_task(name="health.tasks.run_batch", acks_late=True, reject_on_worker_lost=True)
def run_batch(ids: list[int], lease: str | None = None) -> int:
    """Probe one batch of checks held by the claim's lease; returns how many were written."""
    report = scheduler.run_batch(ids, datetime.fromisoformat(lease) if lease else None)
    if report.written < report.probed:
        logger.info("batch wrote %d of %d checks (lease lost)", report.written, report.probed)
    return report.written


@shared_task(name="health.tasks.mark_late_heartbeats")
def mark_late_heartbeats() -> int:
    return heartbeats.mark_late()


@shared_task(name="health.tasks.prune_heartbeat_pings")
def prune_heartbeat_pings() -> int:
    """Hourly (beat): ping history past its retention goes; each ping keeps the count cap."""
    return heartbeats.prune_pings()


@shared_task(name="health.tasks.announce_maintenance")
def announce_maintenance() -> int:
    return maintenance.announce()


@shared_task(name="health.tasks.fold_rollups")
def fold_rollups() -> int:
    """Every minute (beat): finished minutes are added into their hour rows (the watermark),
    and the partitions being written are vacuumed (room for HOT updates)."""
    folded = rollups.fold()
    rollups.vacuum_hot()
    return folded


@shared_task(name="health.tasks.compact_rollups")
def compact_rollups() -> int:
    """Every 10 min (beat): minute partitions made ahead, finished ones packed, those past a
    day dropped (after their minutes are folded); anything past retention is deleted."""
    folded = rollups.compact()
    rollups.prune()
    return folded


@shared_task(name="health.tasks.reconcile_checks")
def reconcile_checks() -> int:
    created, removed = services.reconcile()
    return created + removed


@shared_task(name="health.tasks.claim_due_vendors")
def claim_due_vendors() -> int:
    """Every 5 s (beat): watch newly watched dependencies, lease the due ones, poll each."""
    vendors.ensure_rows()
    ids, lease = vendors.claim_due()
    for status_id in ids:
        poll_vendor.delay(status_id, lease.isoformat())
    return len(ids)


@shared_task(name="health.tasks.poll_vendor", acks_late=True, reject_on_worker_lost=True)
def poll_vendor(status_id: int, lease: str) -> str:
    """Fetch one dependency's status page and run its probe; returns its state."""
    return vendors.poll(status_id, datetime.fromisoformat(lease)).state
