"""The trace ingest's beat task: expire unpaired halves even while no spans arrive."""

from __future__ import annotations

from celery import shared_task

from topology.ingest.service import sweep


@shared_task(name="topology.ingest.tasks.sweep", ignore_result=True)
def sweep_unpaired() -> int:
    return sweep()
