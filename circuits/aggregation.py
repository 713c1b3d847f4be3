"""Turbine's view of a circuit across its instances, computed in SQL for many circuits at once.

Per circuit: instances by state, the worst state among fresh instances (stale when none is
fresh), and failure and slow-call rates combined by call volume (an instance with 1,000
calls weighs a hundred times one with 10; instances with no verdict weigh nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection

from circuits.choices import SEVERITY, AggregateState, CircuitEvent, CircuitState
from circuits.models import Circuit, CircuitInstanceState, CircuitSample, CircuitTransition
from controlplane.events import publish

STALE = AggregateState.STALE.value
CLOSED = AggregateState.CLOSED.value
STALE_SEVERITY = SEVERITY[AggregateState.STALE]

# The SQL below inlines these constants (our own choices, never user input).
_SEVERITY_OF_STATE = " ".join(
    f"WHEN '{state}' THEN {rank}" for state, rank in SEVERITY.items() if state != STALE
)
_STATE_OF_SEVERITY = " ".join(f"WHEN {rank} THEN '{state}'" for state, rank in SEVERITY.items())
_REJECTING = ", ".join(f"'{s}'" for s in (CircuitState.OPEN, CircuitState.FORCED_OPEN))

_EVENT_FOR_STATE = {
    AggregateState.OPEN: CircuitEvent.OPENED,
    AggregateState.FORCED_OPEN: CircuitEvent.OPENED,
    AggregateState.HALF_OPEN: CircuitEvent.HALF_OPENED,
    AggregateState.CLOSED: CircuitEvent.CLOSED,
    AggregateState.STALE: CircuitEvent.STALE,
}


@dataclass(frozen=True)
class Change:
    """A circuit whose aggregate state moved."""

    circuit_id: int
    before: str
    after: str
    first_seen: bool = False  # the circuit had no instance before this change

    @property
    def worth_telling(self) -> bool:
        # A circuit first seen closed is news to nobody; first seen open is.
        return self.after in _EVENT_FOR_STATE and not (
            self.first_seen and self.after == AggregateState.CLOSED
        )


def recompute(circuit_ids: list[int]) -> list[Change]:
    """Recompute the aggregates of these circuits (locked by the caller) in one statement."""
    if not circuit_ids:
        return []
    circuits = Circuit._meta.db_table
    states = CircuitInstanceState._meta.db_table
    transitions = CircuitTransition._meta.db_table
    rated = "NOT s.stale AND s.calls > 0 AND s.{0} IS NOT NULL"
    failure, slow = rated.format("failure_rate"), rated.format("slow_call_rate")
    sql = f"""
        WITH agg AS (
            SELECT c.id AS circuit_id,
                count(s.id) AS total,
                count(s.id) FILTER (WHERE s.stale) AS stale_n,
                count(s.id) FILTER (WHERE NOT s.stale AND s.state IN ({_REJECTING})) AS open_n,
                max(CASE WHEN s.stale THEN NULL ELSE CASE s.state {_SEVERITY_OF_STATE} END END)
                    AS worst,
                coalesce(sum(s.calls) FILTER (WHERE NOT s.stale), 0) AS volume,
                coalesce(sum(s.rejected_calls) FILTER (WHERE NOT s.stale), 0) AS rejected,
                sum(s.failure_rate * s.calls) FILTER (WHERE {failure})
                    / nullif(sum(s.calls) FILTER (WHERE {failure}), 0) AS failure_rate,
                sum(s.slow_call_rate * s.calls) FILTER (WHERE {slow})
                    / nullif(sum(s.calls) FILTER (WHERE {slow}), 0) AS slow_call_rate
            FROM {circuits} c LEFT JOIN {states} s ON s.circuit_id = c.id
            WHERE c.id = ANY(%s)
            GROUP BY c.id
        ),
        computed AS (
            SELECT agg.*, coalesce(worst, {STALE_SEVERITY}) AS severity,
                CASE coalesce(worst, {STALE_SEVERITY}) {_STATE_OF_SEVERITY} END AS new_state
            FROM agg
        ),
        upd AS (
            UPDATE {circuits} c SET
                state = computed.new_state,
                severity = computed.severity,
                open_instances = computed.open_n,
                total_instances = computed.total,
                stale_instances = computed.stale_n,
                failure_rate = computed.failure_rate,
                slow_call_rate = computed.slow_call_rate,
                call_volume = computed.volume,
                rejected_calls = computed.rejected,
                state_changed_at = CASE WHEN c.state <> computed.new_state
                    THEN now() ELSE c.state_changed_at END,
                updated_at = now()
            FROM computed JOIN {circuits} old ON old.id = computed.circuit_id
            WHERE c.id = computed.circuit_id
            RETURNING c.id, old.state AS before, c.state AS after, c.failure_rate, c.call_volume,
                old.total_instances = 0 AS first_seen
        ),
        moved AS (
            INSERT INTO {transitions} (circuit_id, instance_key, from_state, to_state, at,
                failure_rate, calls)
            SELECT id, '', before, after, now(), failure_rate, call_volume
            FROM upd WHERE before <> after
            RETURNING 1
        )
        SELECT id, before, after, first_seen FROM upd WHERE before <> after ORDER BY id
    """  # noqa: S608 (table names and constants are ours; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [sorted(circuit_ids)])
        return [Change(*row) for row in cursor.fetchall()]


def record_samples(circuit_ids: list[int]) -> None:
    """Fold the circuits' current aggregates into this minute's sample (one statement)."""
    if not circuit_ids:
        return
    circuits = Circuit._meta.db_table
    samples = CircuitSample._meta.db_table
    sql = f"""
        INSERT INTO {samples} AS m (circuit_id, bucket, failure_rate, slow_call_rate,
            call_volume, rejected_calls, open_instances, total_instances, severity)
        SELECT id, date_trunc('minute', now()), failure_rate, slow_call_rate, call_volume,
            rejected_calls, open_instances, total_instances, severity
        FROM {circuits} WHERE id = ANY(%s) ORDER BY id
        ON CONFLICT (circuit_id, bucket) DO UPDATE SET
            failure_rate = EXCLUDED.failure_rate,
            slow_call_rate = EXCLUDED.slow_call_rate,
            call_volume = EXCLUDED.call_volume,
            rejected_calls = EXCLUDED.rejected_calls,
            open_instances = GREATEST(m.open_instances, EXCLUDED.open_instances),
            total_instances = EXCLUDED.total_instances,
            severity = GREATEST(m.severity, EXCLUDED.severity)
    """  # noqa: S608 (table names are ours; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [sorted(circuit_ids)])


def publish_changes(changes: list[Change], *, actor: Any = None) -> None:
    """One event per circuit whose aggregate moved to a state worth telling people about."""
    wanted = [c for c in changes if c.worth_telling]
    if not wanted:
        return
    circuits = Circuit.objects.select_related(
        "service", "service__team", "environment", "protects_service", "protects_external"
    ).in_bulk([c.circuit_id for c in wanted])
    for change in wanted:
        circuit = circuits.get(change.circuit_id)
        if circuit is None:
            continue
        publish(
            _EVENT_FOR_STATE[AggregateState(change.after)],
            actor=actor,
            subject=circuit,
            message=describe(circuit, change.before),
            payload={
                "from": change.before,
                "to": change.after,
                "open_instances": circuit.open_instances,
                "total_instances": circuit.total_instances,
                "stale_instances": circuit.stale_instances,
                "failure_rate": circuit.failure_rate,
                "call_volume": circuit.call_volume,
                "protects": circuit.target_label,
                "circuit": circuit.name,
            },
        )


def describe(circuit: Circuit, before: str) -> str:
    """One line for the timeline: what moved, where, and how bad."""
    target = f" (protects {circuit.target_label})" if circuit.target_label else ""
    rate = f", failure rate {circuit.failure_rate:.1f}%" if circuit.failure_rate is not None else ""
    return (
        f"{circuit.name}{target} {before} -> {circuit.state} on "
        f"{circuit.open_instances}/{circuit.total_instances} instances open{rate}"
    )
