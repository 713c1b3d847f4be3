"""Which services are in maintenance now, and announcing windows as they start and end."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from controlplane.events import publish
from health.choices import MaintenanceEvent
from health.models import MaintenanceWindow


class MaintenanceCalendar:
    """The windows of some services, asked per (service, environment) at a moment."""

    def __init__(self, windows: Iterable[MaintenanceWindow]) -> None:
        self._by_service: dict[int, list[MaintenanceWindow]] = {}
        for window in windows:
            self._by_service.setdefault(window.service_id, []).append(window)

    @classmethod
    def for_services(cls, service_ids: Iterable[int]) -> MaintenanceCalendar:
        return cls(MaintenanceWindow.objects.filter(service_id__in=set(service_ids)))

    def active(self, service_id: int, environment_id: int, moment: datetime) -> bool:
        return any(
            w.covers(environment_id) and w.is_active_at(moment)
            for w in self._by_service.get(service_id, ())
        )


def in_maintenance(service_id: int, environment_id: int, moment: datetime | None = None) -> bool:
    calendar = MaintenanceCalendar.for_services([service_id])
    return calendar.active(service_id, environment_id, moment or timezone.now())


def announce(now: datetime | None = None) -> int:
    """Publish maintenance.started / maintenance.ended for windows whose state changed."""
    now = now or timezone.now()
    changed = 0
    with transaction.atomic():
        windows = MaintenanceWindow.objects.select_for_update(
            skip_locked=True, of=("self",)
        ).select_related("service", "service__team", "environment")
        for window in windows:
            active = window.is_active_at(now)
            if active == window.announced_active:
                continue
            window.announced_active = active
            window.save(update_fields=["announced_active"])
            publish(
                MaintenanceEvent.STARTED if active else MaintenanceEvent.ENDED,
                subject=window,
                service=window.service,
                environment=window.environment,
                message=window.reason,
                payload={"window": window.pk, "recurring": window.is_recurring},
            )
            changed += 1
    return changed
