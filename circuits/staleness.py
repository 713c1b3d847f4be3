"""Instances that stop reporting become stale (never silently closed), and are forgotten later."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from catalog.choices import Lifecycle
from circuits import aggregation, live_tiles
from circuits.models import Circuit, CircuitInstanceState, CircuitTransition


def mark_stale(limit: int = 1000) -> list[int]:
    """Mark silent instance states stale and re-aggregate their circuits; returns the circuits.

    Circuits being written by an ingest batch right now are skipped (SKIP LOCKED): that
    batch re-aggregates them, and the next sweep catches what it did not refresh.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.SIGNALBOX_CIRCUITS_STALE_SECONDS)
    circuits = Circuit._meta.db_table
    states = CircuitInstanceState._meta.db_table
    transitions = CircuitTransition._meta.db_table
    sql = f"""
        WITH due AS (
            SELECT DISTINCT circuit_id FROM {states}
            WHERE NOT stale AND received_at < %s LIMIT %s
        ),
        locked AS (
            SELECT id FROM {circuits} WHERE id IN (SELECT circuit_id FROM due)
            ORDER BY id FOR UPDATE SKIP LOCKED
        ),
        marked AS (
            UPDATE {states} s SET stale = true
            WHERE s.circuit_id IN (SELECT id FROM locked) AND NOT s.stale AND s.received_at < %s
            RETURNING s.circuit_id, s.instance_key, s.state, s.failure_rate, s.calls
        ),
        moved AS (
            INSERT INTO {transitions} (circuit_id, instance_key, from_state, to_state, at,
                failure_rate, calls)
            SELECT circuit_id, instance_key, state, %s, now(), failure_rate, calls FROM marked
            RETURNING 1
        )
        SELECT DISTINCT circuit_id FROM marked ORDER BY circuit_id
    """  # noqa: S608 (table names are ours; values are parameters)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, [cutoff, limit, cutoff, aggregation.STALE])
            ids = [row[0] for row in cursor.fetchall()]
        _reaggregate(ids)
    return ids


def forget_departed(limit: int = 1000) -> int:
    """Drop states of deregistered instances, and of instances stale for longer than
    SIGNALBOX_CIRCUITS_FORGET_HOURS (their history stays)."""
    cutoff = timezone.now() - timedelta(hours=settings.SIGNALBOX_CIRCUITS_FORGET_HOURS)
    with transaction.atomic():
        gone = CircuitInstanceState.objects.filter(
            instance__lifecycle=Lifecycle.DEREGISTERED
        ) | CircuitInstanceState.objects.filter(stale=True, received_at__lt=cutoff)
        rows = list(gone.values_list("id", "circuit_id")[:limit])
        if not rows:
            return 0
        circuit_ids = sorted({circuit_id for _, circuit_id in rows})
        locked = list(
            Circuit.objects.select_for_update(skip_locked=True)
            .filter(pk__in=circuit_ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        deleted, _ = CircuitInstanceState.objects.filter(
            id__in=[pk for pk, circuit_id in rows if circuit_id in set(locked)]
        ).delete()
        _reaggregate(locked)
    return deleted


def forget_instance(instance_id: int) -> int:
    """Drop a departed instance's states now, so its circuits stop counting it.

    Circuits locked by an ingest batch are skipped (never waited on, so never a
    deadlock); the hourly prune drops what is left once the states are stale.
    """
    with transaction.atomic():
        circuit_ids = sorted(
            set(
                CircuitInstanceState.objects.filter(instance_id=instance_id).values_list(
                    "circuit_id", flat=True
                )
            )
        )
        locked = list(
            Circuit.objects.select_for_update(skip_locked=True)
            .filter(pk__in=circuit_ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        deleted, _ = CircuitInstanceState.objects.filter(
            instance_id=instance_id, circuit_id__in=locked
        ).delete()
        _reaggregate(locked)
    return deleted


def _reaggregate(circuit_ids: list[int]) -> None:
    if not circuit_ids:
        return
    changes = aggregation.recompute(circuit_ids)
    aggregation.record_samples(circuit_ids)
    aggregation.publish_changes(changes, actor="system")
    transaction.on_commit(lambda: live_tiles.mark_dirty(circuit_ids))
