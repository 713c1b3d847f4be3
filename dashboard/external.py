"""External dependencies as one view: their vendor's page, our probe, the circuits that
protect them and who depends on them, summed up in one verdict line (docs/external.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from catalog.choices import StatusSource
from catalog.models import ExternalDependency, Service
from circuits.models import Circuit
from health.choices import CheckStatus, ExternalState
from health.models import VendorStatus

CIRCUIT_ROWS = 100
DEPENDENT_ROWS = 100
LIST_ROWS = 200
SETTLED = (CheckStatus.PASS, CheckStatus.FAIL)


@dataclass
class DependencyView:
    dependency: ExternalDependency
    status: VendorStatus | None
    circuits: list[Circuit] = field(default_factory=list)
    dependents: list[Service] = field(default_factory=list)

    @property
    def open_circuits(self) -> list[Circuit]:
        return [c for c in self.circuits if c.is_rejecting]

    @property
    def ahead(self) -> dict[str, Any] | None:
        if self.status is None:
            return None
        return self.status.ahead_of_vendor(len(self.open_circuits))

    @property
    def ahead_line(self) -> str:
        """ "our probes fail; their status page still says operational, since 14:05"."""
        ahead = self.ahead
        if ahead is None:
            return ""
        since = self._trouble_since()
        when = f", since {timezone.localtime(since):%H:%M}" if since else ""
        return f"{' and '.join(ahead['reasons'])}; their status page still says operational{when}"

    def _trouble_since(self) -> datetime | None:
        starts = [c.state_changed_at for c in self.open_circuits]
        status = self.status
        failing = status is not None and status.probe_status == CheckStatus.FAIL
        if failing and status is not None and status.probe_failing_since is not None:
            starts.append(status.probe_failing_since)
        return min(starts) if starts else None

    @property
    def verdict(self) -> str:
        """One line: what their page (or our probe) says and what our circuits do."""
        return verdict(self.dependency, self.status, self.circuits)


def verdict(
    dependency: ExternalDependency, status: VendorStatus | None, circuits: list[Circuit]
) -> str:
    parts = [_state_part(dependency, status)]
    watched_page = status is not None and status.source == StatusSource.STATUSPAGE
    if watched_page and status is not None and status.probe_status in SETTLED:
        passes = status.probe_status == CheckStatus.PASS
        parts.append(f"our probe {'passes' if passes else 'fails'}")
    parts.append(_circuit_part(circuits))
    line = " and ".join(p for p in parts if p)
    return line[:1].upper() + line[1:]


def _state_part(dependency: ExternalDependency, status: VendorStatus | None) -> str:
    if dependency.status_source == StatusSource.NONE:
        return "not watched (no status source)"
    if status is None:
        return "not polled yet"
    label = ExternalState(status.state).label.lower()
    if status.state == ExternalState.UNKNOWN:
        return f"state unknown ({status.summary})" if status.summary else "state unknown"
    if status.source == StatusSource.PROBE:
        return f"our probe says {label}"
    return f"their page says {label}"


def _circuit_part(circuits: list[Circuit]) -> str:
    if not circuits:
        return ""
    rejecting = [c for c in circuits if c.is_rejecting]
    if len(circuits) == 1:
        return f"our circuit to them is {circuits[0].get_state_display().lower()}"
    if rejecting:
        return f"{len(rejecting)} of our {len(circuits)} circuits to them are open"
    return f"our {len(circuits)} circuits to them are closed"


def dependency_view(dependency: ExternalDependency) -> DependencyView:
    status = VendorStatus.objects.filter(dependency=dependency).first()
    circuits = list(
        Circuit.objects.filter(protects_external=dependency)
        .select_related("service", "environment")
        .order_by("-severity", "service__slug", "environment__order", "name")[:CIRCUIT_ROWS]
    )
    dependents = list(
        dependency.dependents.select_related("team").order_by("slug")[:DEPENDENT_ROWS]
    )
    return DependencyView(dependency, status, circuits, dependents)


def list_views() -> list[DependencyView]:
    """Every external dependency with its state and open circuits: three queries."""
    dependencies = list(
        ExternalDependency.objects.select_related("vendor_status").order_by("slug")[:LIST_ROWS]
    )
    circuits: dict[int, list[Circuit]] = {}
    for c in Circuit.objects.filter(protects_external__in=dependencies).select_related(
        "service", "environment"
    ):
        assert c.protects_external_id is not None
        circuits.setdefault(c.protects_external_id, []).append(c)
    return [
        DependencyView(d, getattr(d, "vendor_status", None), circuits.get(d.pk, []))
        for d in dependencies
    ]
