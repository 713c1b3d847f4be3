"""Housekeeping of the spine."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from controlplane.models import Event


@shared_task(name="controlplane.tasks.prune_events")
def prune_events() -> int:
    """Delete events older than SIGNALBOX_EVENT_RETENTION_DAYS; returns how many."""
    cutoff = timezone.now() - timedelta(days=settings.SIGNALBOX_EVENT_RETENTION_DAYS)
    deleted, _ = Event.objects.filter(created_at__lt=cutoff).delete()
    return deleted
