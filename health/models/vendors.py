"""The watched state of an external dependency: its vendor's status page, our probe of it,
and when it is polled next (health/vendors.py polls; docs/external.md)."""

from __future__ import annotations

from typing import Any, TypedDict

from django.db import models
from django.utils import timezone

from catalog.choices import StatusSource
from catalog.models import ExternalDependency
from health.choices import CheckStatus, ExternalState


class StatusApi(TypedDict):
    state: str
    state_since: str
    source: str
    summary: str
    fetched_at: str | None
    indicator: str
    indicator_description: str
    components: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    maintenances: list[dict[str, Any]]
    failures: int
    last_error: str
    our_probe: dict[str, Any] | None
    ahead_of_vendor: dict[str, Any] | None


class VendorStatus(models.Model):
    """One external dependency's vendor page as last fetched, our probe, and the poll schedule."""

    dependency = models.OneToOneField(
        ExternalDependency, on_delete=models.CASCADE, related_name="vendor_status"
    )
    state = models.CharField(
        max_length=16, choices=ExternalState.choices, default=ExternalState.UNKNOWN
    )
    state_since = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16, blank=True, help_text="the source that set state")
    summary = models.CharField(max_length=300, blank=True)
    # The vendor's page, as its last 200 answer said (a 304 keeps all of it).
    indicator = models.CharField(max_length=16, blank=True)
    indicator_description = models.CharField(max_length=200, blank=True)
    components = models.JSONField(default=list, blank=True)
    incidents = models.JSONField(default=list, blank=True)
    maintenances = models.JSONField(default=list, blank=True)
    page_operational_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="since when the watched part of their page says operational",
    )
    etag = models.CharField(max_length=300, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True, help_text="last 200 or 304")
    failures = models.PositiveIntegerField(default=0, help_text="consecutive failed fetches")
    last_error = models.CharField(max_length=300, blank=True)
    # Our own probe (when the dependency has a probe URL).
    probe_status = models.CharField(max_length=8, choices=CheckStatus.choices, blank=True)
    probe_successes = models.PositiveIntegerField(default=0)
    probe_failures = models.PositiveIntegerField(default=0)
    probe_latency_ms = models.FloatField(null=True, blank=True)
    probe_reason = models.CharField(max_length=300, blank=True)
    probe_checked_at = models.DateTimeField(null=True, blank=True)
    probe_failing_since = models.DateTimeField(null=True, blank=True)
    # The schedule: claimed with SKIP LOCKED and a lease, like instance checks.
    next_due_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["dependency__slug"]
        indexes = [models.Index(fields=["next_due_at"], name="vendor_status_due")]
        verbose_name_plural = "vendor statuses"

    def __str__(self) -> str:
        return f"{self.dependency_id}: {self.state}"

    @property
    def watched_components(self) -> list[dict[str, Any]]:
        return [c for c in self.components if c.get("watched")]

    @property
    def other_components(self) -> list[dict[str, Any]]:
        return [c for c in self.components if not c.get("watched")]

    @property
    def our_probe(self) -> dict[str, Any] | None:
        if not self.probe_status:
            return None
        return {
            "state": self.probe_status,
            "latency_ms": self.probe_latency_ms,
            "reason": self.probe_reason,
            "checked_at": _iso(self.probe_checked_at),
            "failing_since": _iso(self.probe_failing_since),
        }

    def ahead_of_vendor(self, open_circuits: int = 0) -> dict[str, Any] | None:
        """When we see trouble (our probe fails, or circuits protecting the dependency are
        open) while their page still says operational: what we see and since when."""
        if self.state != ExternalState.OPERATIONAL or self.source != StatusSource.STATUSPAGE:
            return None
        reasons = []
        if self.probe_status == CheckStatus.FAIL:
            reasons.append("our probes fail")
        if open_circuits:
            reasons.append(f"{open_circuits} circuit{'s' if open_circuits != 1 else ''} open")
        if not reasons:
            return None
        since = self.probe_failing_since if self.probe_status == CheckStatus.FAIL else None
        return {"reasons": reasons, "since": _iso(since)}

    def as_api(self, open_circuits: int = 0) -> StatusApi:
        return {
            "state": self.state,
            "state_since": self.state_since.isoformat(),
            "source": self.source,
            "summary": self.summary,
            "fetched_at": _iso(self.fetched_at),
            "indicator": self.indicator,
            "indicator_description": self.indicator_description,
            "components": self.components,
            "incidents": self.incidents,
            "maintenances": self.maintenances,
            "failures": self.failures,
            "last_error": self.last_error,
            "our_probe": self.our_probe,
            "ahead_of_vendor": self.ahead_of_vendor(open_circuits),
        }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
