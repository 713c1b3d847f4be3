"""Push checks for cron and batch jobs: a job pings, and silence past the deadline means down."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from django.db import models
from django.urls import reverse

from catalog.models import Environment, Service, Team
from health.choices import HeartbeatStatus, PingKind, ScheduleKind

LOG_TAIL_BYTES = 10_000


class Heartbeat(models.Model):
    """A job that promises to ping every period (or on a cron schedule), give or take grace."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="heartbeats")
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, null=True, blank=True, related_name="heartbeats"
    )
    schedule_kind = models.CharField(
        max_length=8, choices=ScheduleKind.choices, default=ScheduleKind.PERIOD
    )
    period_seconds = models.PositiveIntegerField(default=86400)
    cron = models.CharField(max_length=100, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    grace_seconds = models.PositiveIntegerField(default=3600)
    status = models.CharField(
        max_length=8, choices=HeartbeatStatus.choices, default=HeartbeatStatus.NEW
    )
    down_reason = models.CharField(max_length=200, blank=True)
    last_ping_at = models.DateTimeField(null=True, blank=True)
    last_ping_kind = models.CharField(max_length=8, choices=PingKind.choices, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_duration_seconds = models.FloatField(null=True, blank=True)
    last_exit_code = models.IntegerField(null=True, blank=True)
    last_log = models.TextField(blank=True)
    ping_count = models.PositiveBigIntegerField(default=0)
    # When silence turns into "down"; the late sweep reads this (indexed) column only.
    deadline = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["service__slug", "name"]
        constraints = [
            # nulls_distinct=False: "every environment" (NULL) counts as one environment.
            models.UniqueConstraint(
                fields=["service", "environment", "name"],
                name="heartbeat_unique_name",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"{self.service.slug}/{self.name}"

    def get_absolute_url(self) -> str:
        return reverse("health:service", args=[self.service.slug])

    def owning_team(self) -> Team:
        return self.service.team

    def next_expected_after(self, moment: datetime) -> datetime:
        """When the next success ping is due, counting from a ping at `moment`."""
        if self.schedule_kind == ScheduleKind.CRON:
            local = moment.astimezone(ZoneInfo(self.timezone))
            nxt: datetime = croniter(self.cron, local).get_next(datetime)
            return nxt
        return moment + timedelta(seconds=self.period_seconds)

    def deadline_after(self, moment: datetime) -> datetime:
        return self.next_expected_after(moment) + timedelta(seconds=self.grace_seconds)


# Healthchecks.io keeps the last 100 pings of a check on its free plan; so do we.
PINGS_KEPT = 100
USER_AGENT_CHARS = 200


class HeartbeatPing(models.Model):
    """One ping of a heartbeat as it arrived: when, what kind, the exit code and log tail."""

    heartbeat = models.ForeignKey(
        Heartbeat,
        on_delete=models.CASCADE,
        related_name="pings",
        db_index=False,  # the (heartbeat, n) index below serves every lookup by heartbeat
    )
    # The heartbeat's ping_count once this ping was counted (1 for the first): the cap
    # deletes n <= ping_count - PINGS_KEPT, a short range scan of the index.
    n = models.PositiveBigIntegerField()
    at = models.DateTimeField()
    kind = models.CharField(max_length=8, choices=PingKind.choices)
    exit_code = models.IntegerField(null=True, blank=True)
    # Since the /start ping this one ends; None for a start or a ping without one.
    duration_seconds = models.FloatField(null=True, blank=True)
    body = models.TextField(blank=True)  # the request body's last LOG_TAIL_BYTES
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=USER_AGENT_CHARS, blank=True)

    class Meta:
        ordering = ["heartbeat", "-n"]
        indexes = [models.Index(fields=["heartbeat", "-n"], name="heartbeat_ping_latest")]

    def __str__(self) -> str:
        return f"ping #{self.n} of heartbeat {self.heartbeat_id}"
