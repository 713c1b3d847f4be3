"""Topology's tables: per-minute edges between services, derived from traces.

Raw spans are never stored. The OTLP ingest pairs client and server spans (as the
OpenTelemetry Collector's servicegraph connector does) and adds each call to the row of
its minute; the dependency map reads these rows next to declared dependencies, circuits
and probes.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models

# Upper bounds (ms) of the latency histogram's buckets; one more bucket counts the rest.
# The servicegraph connector's default bounds, cut to the range a request path lives in.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    2,
    4,
    6,
    8,
    10,
    50,
    100,
    200,
    400,
    800,
    1000,
    1400,
    2000,
    5000,
    10000,
    15000,
)


class NodeKind(models.TextChoices):
    SERVICE = "service", "Service in the catalog"
    EXTERNAL = "external", "External dependency in the catalog"
    VIRTUAL = "virtual", "Seen only in traces (peer.service, server.address, db.system)"


class ConnectionType(models.TextChoices):
    DIRECT = "", "Request/response"
    MESSAGING = "messaging", "Producer/consumer"
    DATABASE = "database", "Database"


class EdgeMinute(models.Model):
    """Calls from `client` to `server` in one minute of one environment."""

    minute = models.DateTimeField()
    environment = models.ForeignKey(
        "catalog.Environment",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    client = models.CharField(max_length=200)
    server = models.CharField(max_length=200)
    server_kind = models.CharField(
        max_length=16, choices=NodeKind.choices, default=NodeKind.SERVICE
    )
    connection_type = models.CharField(
        max_length=16,
        choices=ConnectionType.choices,
        default=ConnectionType.DIRECT,
        blank=True,
    )
    # Scaled by the sampling ratio when spans carry one, so these estimate real traffic.
    calls = models.BigIntegerField(default=0)
    failures = models.BigIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0.0)
    # len(LATENCY_BOUNDS_MS) + 1 counts; the last is everything above the last bound.
    latency_buckets = ArrayField(models.BigIntegerField(), default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "environment", "client", "server", "connection_type"],
                name="topology_edge_minute_unique",
                nulls_distinct=False,
            )
        ]
        indexes = [models.Index(fields=["minute"], name="topology_edge_minute_idx")]

    def __str__(self) -> str:
        return f"{self.client} → {self.server} @ {self.minute:%Y-%m-%d %H:%M}"
