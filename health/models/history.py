"""History that grows with transitions and time buckets, never with raw probes."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from catalog.models import Environment, Instance, Service, Team
from health.choices import TransitionLevel


class Transition(models.Model):
    """An instance check or a service's health changed state, and why."""

    level = models.CharField(max_length=10, choices=TransitionLevel.choices)
    instance = models.ForeignKey(
        Instance, on_delete=models.CASCADE, null=True, blank=True, related_name="transitions"
    )
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="transitions")
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="transitions"
    )
    from_status = models.CharField(max_length=10)
    to_status = models.CharField(max_length=10)
    reason = models.CharField(max_length=500, blank=True)
    in_maintenance = models.BooleanField(default=False)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["service", "environment", "-at"], name="transition_service_time"),
            models.Index(fields=["instance", "-at"], name="transition_instance_time"),
            models.Index(fields=["at"], name="transition_time"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.from_status}->{self.to_status}"

    def owning_team(self) -> Team:
        return self.service.team


# Latency histogram bucket upper bounds in ms (the last bucket is everything slower).
# Log-spaced so p50/p95 estimates stay within ~25% at any scale, and histograms from
# different batches merge exactly by adding counts.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1,
    2,
    3,
    5,
    7,
    10,
    15,
    20,
    30,
    50,
    75,
    100,
    150,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    5000,
    10000,
)
HISTOGRAM_SIZE = len(LATENCY_BOUNDS_MS) + 1


class RollupFields(models.Model):
    """Probe results of one service in one environment over one minute (or hour).

    Tables made by migration 0005 (the minute one partitioned by hour, see health.rollups);
    the primary key is (service, environment, bucket), no surrogate id. The histogram is
    stored without trailing zero buckets (fewer than HISTOGRAM_SIZE entries)."""

    pk = models.CompositePrimaryKey("service", "environment", "bucket")
    # No index on environment (the primary key leads with service): 22 B a row saved; an
    # environment's deletion scans the rollups once.
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+", db_index=False)
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    bucket = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    warnings = models.PositiveIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0)
    latency_max_ms = models.FloatField(default=0)
    histogram = ArrayField(models.IntegerField(), size=HISTOGRAM_SIZE, default=list)

    class Meta:
        abstract = True
        ordering = ["bucket"]

    def __str__(self) -> str:
        return f"{self.service_id}@{self.environment_id} {self.bucket:%Y-%m-%d %H:%M}"


class MinuteRollup(RollupFields):
    """One minute; kept a day (hourly partitions dropped whole, see health.rollups)."""

    class Meta(RollupFields.Meta):
        db_table = "health_rollup_minute"


class HourRollup(RollupFields):
    """One hour: its minutes up to the watermark, folded continuously; kept for retention."""

    class Meta(RollupFields.Meta):
        db_table = "health_rollup_hour"


class RollupWatermark(models.Model):
    """The single row: every minute before folded_until is in its hour row, none after."""

    id = models.SmallIntegerField(primary_key=True)
    folded_until = models.DateTimeField()

    class Meta:
        db_table = "health_rollup_watermark"

    def __str__(self) -> str:
        return f"folded until {self.folded_until:%Y-%m-%d %H:%M}"
