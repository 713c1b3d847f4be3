"""Health's public functions for other apps (docs/architecture.md, The floors), and
check-row bookkeeping."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from catalog.choices import LIVE_LIFECYCLES, Lifecycle
from catalog.models import Instance, Service
from health import derive
from health.choices import CheckStatus, ServiceStatus
from health.models import CheckSpec, InstanceCheck, ServiceHealth
from health.rollups import minute_of, probe_counts
from health.scheduler import initial_due
from health.specs import DEFAULT_SPEC, ProbeSpec


def instance_status(instance_ids: list[int]) -> dict[int, str]:
    """'pass' | 'warn' | 'fail' | 'unknown' per instance id (unknown when never checked)."""
    found = dict(
        InstanceCheck.objects.filter(instance_id__in=instance_ids).values_list(
            "instance_id", "status"
        )
    )
    return {i: found.get(i, CheckStatus.UNKNOWN) for i in instance_ids}


def instance_checks(
    instance_ids: list[int],
) -> tuple[dict[int, str], dict[int, float | None]]:
    """`instance_status` and `instance_latencies` of many instances in one query (the
    scaling loop reads both for thousands of instances a beat)."""
    found = {
        instance_id: (status, latency)
        for instance_id, status, latency in InstanceCheck.objects.filter(
            instance_id__any=instance_ids
        ).values_list("instance_id", "status", "last_latency_ms")
    }
    statuses = {i: found[i][0] if i in found else CheckStatus.UNKNOWN for i in instance_ids}
    latencies = {i: found[i][1] if i in found else None for i in instance_ids}
    return statuses, latencies


def instance_latencies(instance_ids: list[int]) -> dict[int, float | None]:
    """Each instance's last probe latency in ms (None when never checked or not answering)."""
    found = dict(
        InstanceCheck.objects.filter(instance_id__in=instance_ids).values_list(
            "instance_id", "last_latency_ms"
        )
    )
    return {i: found.get(i) for i in instance_ids}


def service_health(service_id: int, environment_id: int) -> str:
    """'healthy' | 'degraded' | 'down' | 'unknown' for a service in one environment."""
    status = (
        ServiceHealth.objects.filter(service_id=service_id, environment_id=environment_id)
        .values_list("status", flat=True)
        .first()
    )
    return status or ServiceStatus.UNKNOWN


def service_healths(environment_id: int | None = None) -> dict[tuple[int, int], str]:
    """Every known service health, keyed by (service_id, environment_id)."""
    rows = ServiceHealth.objects.all()
    if environment_id is not None:
        rows = rows.filter(environment_id=environment_id)
    return {
        (s, e): status
        for s, e, status in rows.values_list("service_id", "environment_id", "status")
    }


def availability_counts(service_id: int, environment_id: int, since: datetime) -> tuple[int, int]:
    """(good, total) probes of a service in one environment from `since` until now.

    Read from the rollups: every bucket that overlaps the window counts whole (per-minute
    buckets for the last day, hourly ones before), so the window is at most one bucket
    longer than asked. A probe is good unless it failed (a warning is good), as in uptime.
    """
    since = since.astimezone(UTC)  # buckets are whole UTC minutes and hours
    total, failures = probe_counts(service_id, environment_id, minute_of(since))
    return total - failures, total


def spec_for_service(service: Service) -> CheckSpec:
    """The service's spec row, created with Kubernetes' defaults the first time it is needed."""
    spec, _ = CheckSpec.objects.get_or_create(service=service)
    return spec


def effective_spec(instance: Instance) -> ProbeSpec:
    override = CheckSpec.objects.filter(instance=instance).first()
    if override is not None:
        return ProbeSpec.from_model(override)
    spec = CheckSpec.objects.filter(service_id=instance.service_id).first()
    return ProbeSpec.from_model(spec) if spec is not None else DEFAULT_SPEC


def ensure_checks(instance: Instance) -> None:
    """Create the check state row of a newly (re-)registered instance, due after a jitter."""
    with transaction.atomic():
        spec_for_service(instance.service)
        spec = effective_spec(instance)
        InstanceCheck.objects.get_or_create(
            instance=instance, defaults={"next_due_at": initial_due(spec, timezone.now())}
        )
        derive.refresh([(instance.service_id, instance.environment_id)])


def forget_checks(instance: Instance) -> None:
    """A deregistered instance is no longer probed; its transitions stay in the history."""
    with transaction.atomic():
        InstanceCheck.objects.filter(instance=instance).delete()
        derive.refresh([(instance.service_id, instance.environment_id)])


def reconcile() -> tuple[int, int]:
    """Level-triggered repair: live instances without a check row get one, gone ones lose it.

    Instances created without the registration API (admin, seed, import) are picked up here.
    """
    now = timezone.now()
    with transaction.atomic():
        missing = list(
            Instance.objects.filter(
                lifecycle__in=LIVE_LIFECYCLES, health_check__isnull=True
            ).select_related("service")[:5000]
        )
        for service_id in {i.service_id for i in missing}:
            CheckSpec.objects.get_or_create(service_id=service_id)
        specs = {
            s.service_id: ProbeSpec.from_model(s)
            for s in CheckSpec.objects.filter(service_id__in={i.service_id for i in missing})
        }
        InstanceCheck.objects.bulk_create(
            [
                InstanceCheck(
                    instance=i, next_due_at=initial_due(specs.get(i.service_id, DEFAULT_SPEC), now)
                )
                for i in missing
            ],
            ignore_conflicts=True,
        )
        gone = InstanceCheck.objects.filter(instance__lifecycle=Lifecycle.DEREGISTERED)
        gone_pairs = set(gone.values_list("instance__service_id", "instance__environment_id"))
        removed, _ = gone.delete()
        pairs = {(i.service_id, i.environment_id) for i in missing} | gone_pairs
        derive.refresh(pairs)
    return len(missing), removed


@dataclass
class Summary:
    """Service health counts for a team or an environment."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def status(self) -> str:
        """down if any service is down, degraded if any is degraded, else healthy/unknown."""
        for status in (ServiceStatus.DOWN, ServiceStatus.DEGRADED, ServiceStatus.HEALTHY):
            if self.counts[status]:
                return status
        return ServiceStatus.UNKNOWN


def team_summaries(environment_id: int | None = None) -> dict[tuple[int, int], Summary]:
    """Per (team_id, environment_id): how many services are healthy, degraded, down, unknown."""
    rows = ServiceHealth.objects.all()
    if environment_id is not None:
        rows = rows.filter(environment_id=environment_id)
    summaries: dict[tuple[int, int], Summary] = defaultdict(Summary)
    for team_id, env_id, status, n in rows.values_list(
        "service__team_id", "environment_id", "status"
    ).annotate(n=Count("id")):
        summaries[(team_id, env_id)].counts[status] = n
    return dict(summaries)


def environment_summaries() -> dict[int, Summary]:
    """Per environment: service health counts."""
    summaries: dict[int, Summary] = defaultdict(Summary)
    for env_id, status, n in ServiceHealth.objects.values_list("environment_id", "status").annotate(
        n=Count("id")
    ):
        summaries[env_id].counts[status] = n
    return dict(summaries)
