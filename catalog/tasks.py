"""Catalog background work: instances that stop checking in become stale."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from catalog.choices import InstanceEvent, Lifecycle
from catalog.models import Instance
from controlplane.events import publish


@shared_task(name="catalog.tasks.mark_stale_instances")
def mark_stale_instances() -> int:
    """Self-registered instances that missed three beats are marked stale."""
    now = timezone.now()
    marked = 0
    with transaction.atomic():
        quiet = (
            Instance.objects.select_for_update(skip_locked=True)
            .select_related("service", "environment", "service__team")
            .filter(
                lifecycle__in=[Lifecycle.ACTIVE, Lifecycle.REGISTERED],
                heartbeat_seconds__isnull=False,
                last_seen_at__lt=now - F("heartbeat_seconds") * timedelta(seconds=3),
            )[:500]
        )
        for instance in quiet:
            instance.lifecycle = Lifecycle.STALE
            instance.save(update_fields=["lifecycle"])
            publish(InstanceEvent.STALE, subject=instance, message="stopped sending heartbeats")
            marked += 1
    return marked
