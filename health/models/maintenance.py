"""Maintenance windows: probes go on, transitions are marked so alerting can skip them."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from django.conf import settings
from django.db import models

from catalog.models import Environment, Service, Team


class MaintenanceWindow(models.Model):
    """A one-off (start/end) or recurring (cron + duration) window for a service."""

    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="maintenance_windows"
    )
    environment = models.ForeignKey(
        Environment,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="maintenance_windows",
        help_text="Empty: every environment.",
    )
    reason = models.CharField(max_length=300, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    cron = models.CharField(max_length=100, blank=True, help_text="Recurring: when it starts.")
    timezone = models.CharField(max_length=64, default="UTC")
    duration_minutes = models.PositiveIntegerField(null=True, blank=True)
    # What the last sweep announced (maintenance.started/ended); the truth is is_active_at().
    announced_active = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["service__slug", "starts_at", "id"]

    def __str__(self) -> str:
        return f"maintenance of {self.service.slug}: {self.reason or self.pk}"

    def owning_team(self) -> Team:
        return self.service.team

    @property
    def is_recurring(self) -> bool:
        return bool(self.cron)

    def covers(self, environment_id: int) -> bool:
        return self.environment_id is None or self.environment_id == environment_id

    def is_active_at(self, moment: datetime) -> bool:
        if self.is_recurring:
            start = self.last_start_before(moment)
            return moment < start + timedelta(minutes=self.duration_minutes or 0)
        if self.starts_at is None or self.ends_at is None:
            return False
        return self.starts_at <= moment < self.ends_at

    def last_start_before(self, moment: datetime) -> datetime:
        local = moment.astimezone(ZoneInfo(self.timezone))
        # croniter's get_prev is exclusive of `moment`; a window starting now is active.
        start: datetime = croniter(self.cron, local + timedelta(seconds=1)).get_prev(datetime)
        return start
