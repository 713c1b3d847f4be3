"""Celery entry points for circuits: thin, idempotent, and safe to run on any number of workers."""

from __future__ import annotations

from celery import shared_task

from circuits import history, live, overrides, staleness
from circuits.ingest import scrape as scraping

SCRAPES_PER_TASK = 50  # one event loop reads these concurrently; bounded by the read timeouts


@shared_task(name="circuits.tasks.dispatch_scrapes")
def dispatch_scrapes() -> int:
    """Claim due scrape targets and hand them to workers in chunks; returns how many."""
    ids = scraping.claim_due()
    for start in range(0, len(ids), SCRAPES_PER_TASK):
        scrape.delay(ids[start : start + SCRAPES_PER_TASK])
    return len(ids)


@shared_task(name="circuits.tasks.scrape", acks_late=True)
def scrape(target_ids: list[int]) -> int:
    """Scrape these targets (missing ones are skipped); returns states accepted."""
    return scraping.scrape(target_ids).accepted


@shared_task(name="circuits.tasks.sync_scrape_targets")
def sync_scrape_targets() -> dict[str, int]:
    return scraping.sync_all()


@shared_task(name="circuits.tasks.mark_stale")
def mark_stale() -> int:
    return len(staleness.mark_stale())


@shared_task(name="circuits.tasks.expire_overrides")
def expire_overrides() -> int:
    return overrides.expire_overrides()


@shared_task(name="circuits.tasks.push_live_tiles")
def push_live_tiles() -> int:
    return live.flush_dirty()


@shared_task(name="circuits.tasks.prune")
def prune() -> dict[str, int]:
    pruned = history.prune()
    pruned["forgotten_states"] = staleness.forget_departed()
    return pruned
