"""Service health derived from instance checks, and service-level transitions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count
from django.utils import timezone

from catalog.choices import LIVE_LIFECYCLES
from catalog.models import Environment, Service
from controlplane.events import publish
from health.choices import CheckStatus, HealthEvent, ServiceStatus, TransitionLevel
from health.models import InstanceCheck, ServiceHealth, Transition
from health.states import service_status

Pair = tuple[int, int]  # (service_id, environment_id)


def counts_for(pairs: Iterable[Pair]) -> dict[Pair, Counter[str]]:
    """Live instances per check status for each (service, environment) pair, in one query."""
    wanted = set(pairs)
    counts: dict[Pair, Counter[str]] = {pair: Counter() for pair in wanted}
    if not wanted:
        return counts
    rows = (
        InstanceCheck.objects.filter(
            instance__service_id__in={s for s, _ in wanted},
            instance__environment_id__in={e for _, e in wanted},
            instance__lifecycle__in=LIVE_LIFECYCLES,
        )
        .values_list("instance__service_id", "instance__environment_id", "status")
        .annotate(n=Count("id"))
    )
    for service_id, environment_id, status, n in rows:
        if (service_id, environment_id) in wanted:
            counts[(service_id, environment_id)][status] = n
    return counts


def refresh(
    pairs: Iterable[Pair],
    reasons: dict[Pair, str] | None = None,
    maintenance: dict[Pair, bool] | None = None,
    now: datetime | None = None,
) -> list[Transition]:
    """Recount the pairs' instances; record and publish each service whose health changed.

    Call inside the transaction that changed the instance checks. Rows are locked in
    (service, environment) order before counting, so concurrent batches count each
    other's committed results and never deadlock.
    """
    now = now or timezone.now()
    wanted = sorted(set(pairs))
    if not wanted:
        return []
    ServiceHealth.objects.bulk_create(
        [ServiceHealth(service_id=s, environment_id=e) for s, e in wanted], ignore_conflicts=True
    )
    locked = {
        (h.service_id, h.environment_id): h
        for h in ServiceHealth.objects.select_for_update()
        .filter(service_id__in={s for s, _ in wanted}, environment_id__in={e for _, e in wanted})
        .order_by("service_id", "environment_id")
    }
    counts = counts_for(wanted)
    changed: list[tuple[ServiceHealth, str]] = []
    touched: list[ServiceHealth] = []
    for pair in wanted:
        health = locked[pair]
        c = counts[pair]
        passing, warning, failing = c[CheckStatus.PASS], c[CheckStatus.WARN], c[CheckStatus.FAIL]
        unknown = c[CheckStatus.UNKNOWN]
        new_status = service_status(passing, warning, failing)
        previous = health.status
        before = (health.passing, health.warning, health.failing, health.unknown)
        if new_status == previous and before == (passing, warning, failing, unknown):
            continue
        health.passing, health.warning, health.failing, health.unknown = (
            passing, warning, failing, unknown,
        )  # fmt: skip
        health.updated_at = now
        if new_status != previous:
            health.status = new_status
            health.since = now
            health.reason = _reason(passing, warning, failing, (reasons or {}).get(pair, ""))
            changed.append((health, previous))
        touched.append(health)
    ServiceHealth.objects.bulk_update(
        touched,
        ["status", "since", "reason", "passing", "warning", "failing", "unknown", "updated_at"],
        batch_size=500,
    )
    return _record(changed, maintenance or {}, now)


def is_first_verdict(transition: Transition) -> bool:
    """A service's first healthy verdict: kept in the history, not published (as for
    instances, a newly registered fleet is not news; a first verdict of down is)."""
    return (
        transition.from_status == ServiceStatus.UNKNOWN
        and transition.to_status == ServiceStatus.HEALTHY
    )


def _reason(passing: int, warning: int, failing: int, instance_reason: str) -> str:
    total = passing + warning + failing
    parts = [f"{passing}/{total} passing"]
    if failing:
        parts.append(f"{failing} failing")
    if warning:
        parts.append(f"{warning} warning")
    text = ", ".join(parts)
    return f"{text}: {instance_reason}"[:500] if instance_reason else text


def _record(
    changed: list[tuple[ServiceHealth, str]], maintenance: dict[Pair, bool], now: datetime
) -> list[Transition]:
    if not changed:
        return []
    services = Service.objects.select_related("team").in_bulk({h.service_id for h, _ in changed})
    environments = Environment.objects.in_bulk({h.environment_id for h, _ in changed})
    transitions = []
    for health, previous in changed:
        pair = (health.service_id, health.environment_id)
        transitions.append(
            Transition(
                level=TransitionLevel.SERVICE,
                service_id=health.service_id,
                environment_id=health.environment_id,
                from_status=previous,
                to_status=health.status,
                reason=health.reason,
                in_maintenance=maintenance.get(pair, False),
                at=now,
            )
        )
    Transition.objects.bulk_create(transitions)
    for transition in transitions:
        if is_first_verdict(transition):
            continue
        service = services[transition.service_id]
        environment = environments[transition.environment_id]
        publish(
            HealthEvent.SERVICE_CHANGED,
            subject=service,
            service=service,
            environment=environment,
            message=f"{service.slug} in {environment.slug}: {transition.from_status} -> "
            f"{transition.to_status}",
            payload={
                "from": transition.from_status,
                "to": transition.to_status,
                "reason": transition.reason,
                "in_maintenance": transition.in_maintenance,
            },
        )
    return transitions
