"""Metrics that instances report about themselves (`POST /api/v1/metrics`), kept as each
instance's latest value and a per-minute average (for charts and the leak verdict)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from catalog.choices import Scope
from catalog.models import Instance
from catalog.permissions import Access
from scaling.models import InstanceMetric, MetricMinute

# A value dated further ahead than this is refused: it would shadow every later one.
MAX_FUTURE_SKEW = timedelta(minutes=5)
# Per-minute averages are kept this long (the leak verdict reads an instance's lifetime).
MINUTES_KEPT = timedelta(days=7)


@dataclass
class Recorded:
    """What a batch did: how many values were kept, and each refused one with why."""

    accepted: int = 0
    refused: dict[str, list[str]] = field(default_factory=dict)
    forbidden: str = ""  # the caller may not report for an instance the batch names


def record(values: list[dict[str, Any]], access: Access, now: datetime | None = None) -> Recorded:
    """Keep the batch if every value's instance exists and the caller may report for it;
    otherwise keep none of it, and say what is wrong with each refused value."""
    now = now or timezone.now()
    result = Recorded()
    instances = _instances(values)
    allowed: dict[int, bool] = {}
    rows: list[tuple[int, str, float, datetime]] = []
    for index, value in enumerate(values):
        instance = instances.get(_key(value))
        where = f"metrics.{index}"
        if instance is None:
            result.refused[where] = [
                "no such instance: give its id or service, environment, "
                "host and port as it registered"
            ]
            continue
        if instance.pk not in allowed:
            allowed[instance.pk] = access.can(Scope.REPORT, instance.service.team, instance.service)
        if not allowed[instance.pk]:
            result.forbidden = f"{where}: " + access.why_not(Scope.REPORT, instance.service.team)
            continue
        at = value.get("at") or now
        if at > now + MAX_FUTURE_SKEW:
            result.refused[f"{where}.at"] = ["is in the future; check the instance's clock"]
            continue
        rows.append((instance.pk, value["name"], float(value["value"]), at))
    if rows and not result.refused and not result.forbidden:
        with transaction.atomic():
            _store(rows)
        result.accepted = len(rows)
    return result


def _key(value: dict[str, Any]) -> tuple[Any, ...]:
    if value.get("instance") is not None:
        return ("id", value["instance"].pk)
    return (
        "at",
        value.get("service"),
        value.get("environment"),
        value.get("host"),
        value.get("port"),
    )


def _instances(values: list[dict[str, Any]]) -> dict[tuple[Any, ...], Instance]:
    """The instances a batch names, in two queries at most."""
    found: dict[tuple[Any, ...], Instance] = {}
    by_id = {v["instance"].pk for v in values if v.get("instance") is not None}
    for instance in Instance.objects.select_related("service__team").filter(pk__in=by_id):
        found[("id", instance.pk)] = instance
    addressed = {_key(v) for v in values if v.get("instance") is None}
    if addressed:
        match = Q()
        for _, service, environment, host, port in addressed:
            match |= Q(service__slug=service, environment__slug=environment, host=host, port=port)
        for instance in Instance.objects.select_related("service__team", "environment").filter(
            match
        ):
            key = (
                "at",
                instance.service.slug,
                instance.environment.slug,
                instance.host,
                instance.port,
            )
            found[key] = instance
    return found


def _store(rows: list[tuple[int, str, float, datetime]]) -> None:
    latest = f'"{InstanceMetric._meta.db_table}"'
    minutes = f'"{MetricMinute._meta.db_table}"'
    with connection.cursor() as cursor:
        # The newest value per (instance, name) wins, whatever order they arrive in.
        cursor.executemany(
            f"INSERT INTO {latest} (instance_id, name, value, at) VALUES (%s, %s, %s, %s) "  # noqa: S608 (table names are ours)
            f"ON CONFLICT (instance_id, name) DO UPDATE SET value = EXCLUDED.value, "
            f"at = EXCLUDED.at WHERE {latest}.at <= EXCLUDED.at",
            rows,
        )
        cursor.executemany(
            f"INSERT INTO {minutes} (instance_id, name, minute, total, count) "  # noqa: S608
            f"VALUES (%s, %s, date_trunc('minute', %s::timestamptz), %s, 1) "
            f"ON CONFLICT (instance_id, name, minute) DO UPDATE SET "
            f"total = {minutes}.total + EXCLUDED.total, count = {minutes}.count + 1",
            [(i, n, at, v) for i, n, v, at in rows],
        )


def prune(now: datetime | None = None) -> int:
    """Drop per-minute averages past their retention; returns how many went."""
    cutoff = (now or timezone.now()) - MINUTES_KEPT
    deleted, _ = MetricMinute.objects.filter(minute__lt=cutoff).delete()
    return deleted
