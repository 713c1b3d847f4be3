"""Live fragments of circuits: the grid's tiles and the circuit page's parts.

State changes arrive as events and are pushed at once (as coalesced `Tile`s, so a burst
of changes to one circuit renders it at most twice per window). Rates and volumes move
with every report; those circuits are only marked dirty by ingest and pushed by the
`circuits.tasks.push_live_tiles` beat task, once per tick, from a worker: under heavy
ingest the web processes never render for numbers alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from circuits import fragments, live_tiles
from circuits.choices import CircuitEvent
from circuits.models import Circuit, CircuitOverride
from controlplane.live import Fragment, Tile, push, renders
from controlplane.models import Event

GRID_TOPIC = "circuits"
MAX_CIRCUITS_PER_OVERRIDE = 50


def circuit_topic(circuit_id: int) -> str:
    return f"circuit:{circuit_id}"


def _load(circuit_ids: list[int]) -> list[Circuit]:
    return list(fragments.with_relations(Circuit.objects.filter(pk__in=circuit_ids)))


def render_tile(circuit_id: int) -> str:
    """The grid tile of a circuit as it is now ('' if it is gone)."""
    circuits = _load([circuit_id])
    return fragments.render_tile(fragments.tiles(circuits)[0], oob=True) if circuits else ""


def render_parts(circuit_id: int) -> str:
    """The live parts of a circuit's page as it is now ('' if it is gone)."""
    circuits = _load([circuit_id])
    return fragments.render_circuit_parts(fragments.circuit_page(circuits[0])) if circuits else ""


def _tiles_for(circuit_ids: Iterable[int]) -> list[Fragment]:
    out: list[Fragment] = []
    for pk in circuit_ids:
        out.append(Tile(GRID_TOPIC, f"circuit-{pk}", _bound(render_tile, pk)))
        out.append(Tile(circuit_topic(pk), "parts", _bound(render_parts, pk)))
    return out


def _bound(render: Callable[[int], str], circuit_id: int) -> Callable[[], str]:
    return lambda: render(circuit_id)


@renders(CircuitEvent.FAMILY)
def _circuit_changed(event: Event) -> Iterable[Fragment]:
    """A state change or an override: re-render the circuits it concerns."""
    if event.subject_type == Circuit._meta.label_lower:
        return _tiles_for([int(event.subject_id)])
    if event.subject_type == CircuitOverride._meta.label_lower:
        override = CircuitOverride.objects.filter(pk=event.subject_id).first()
        if override is None:
            return []
        circuits = Circuit.objects.filter(
            service_id=override.service_id, name=override.circuit_name
        )
        if override.environment_id is not None:
            circuits = circuits.filter(environment_id=override.environment_id)
        return _tiles_for(circuits.values_list("pk", flat=True)[:MAX_CIRCUITS_PER_OVERRIDE])
    return []


def flush_dirty(limit: int = 300) -> int:
    """Push fresh tiles and pages for circuits whose numbers moved; returns how many circuits."""
    circuits = _load(live_tiles.take_dirty(limit))
    for tile in fragments.tiles(circuits):
        push(GRID_TOPIC, fragments.render_tile(tile, oob=True))
        push(
            circuit_topic(tile.circuit.pk),
            fragments.render_circuit_parts(fragments.circuit_page(tile.circuit)),
        )
    return len(circuits)
