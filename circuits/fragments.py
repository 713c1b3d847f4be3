"""The circuits' HTML pieces, rendered for a page load and, the same, once per live push."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from circuits.choices import SEVERITY, AggregateState
from circuits.models import (
    Circuit,
    CircuitInstanceState,
    CircuitOverride,
    CircuitSample,
    CircuitTransition,
)
from circuits.services import current_state

SPARK_MINUTES = 30
MAX_INSTANCE_ROWS = 500
TRANSITION_ROWS = 30

# Icon and words beside the colour, so the state never depends on seeing colour.
LOOK = {
    AggregateState.OPEN: ("✖", "Open"),
    AggregateState.FORCED_OPEN: ("⏸", "Forced open"),
    AggregateState.HALF_OPEN: ("◐", "Half open"),
    AggregateState.STALE: ("?", "Stale"),
    AggregateState.DISABLED: ("⊘", "Disabled"),
    AggregateState.METRICS_ONLY: ("◎", "Metrics only"),
    AggregateState.CLOSED: ("✔", "Closed"),
}


@dataclass
class Tile:
    """A circuit as its grid tile shows it."""

    circuit: Circuit
    state: str
    volumes: list[int]
    overrides: list[CircuitOverride]

    @property
    def icon(self) -> str:
        return LOOK[AggregateState(self.state)][0]

    @property
    def label(self) -> str:
        return LOOK[AggregateState(self.state)][1]

    @property
    def order(self) -> int:
        # CSS `order`: the grid stays sorted by severity as live updates swap tiles in.
        return 100 - SEVERITY[self.state]

    @property
    def sparkline(self) -> SafeString:
        return sparkline(self.volumes)


def sparkline(values: list[int], width: int = 120, height: int = 28) -> SafeString:
    """A server-rendered SVG polyline of call volume per minute, oldest first."""
    if not values:
        return mark_safe("")
    top = max(values) or 1
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(values)
    )
    return format_html(
        '<svg class="sb-spark" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
        'aria-label="calls per minute, last {} minutes, peak {}">'
        '<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{}"/></svg>',
        width,
        height,
        width,
        height,
        len(values),
        max(values),
        points,
    )


def tiles(circuits: list[Circuit], now: datetime | None = None) -> list[Tile]:
    """Tiles for these circuits: two queries, however many circuits."""
    now = now or timezone.now()
    first = (now - timedelta(minutes=SPARK_MINUTES - 1)).replace(second=0, microsecond=0)
    ids = [c.pk for c in circuits]
    volumes: dict[int, dict[datetime, int]] = defaultdict(dict)
    for circuit_id, bucket, volume in CircuitSample.objects.filter(
        circuit_id__in=ids, bucket__gte=first
    ).values_list("circuit_id", "bucket", "call_volume"):
        volumes[circuit_id][bucket] = volume
    minutes = [first + timedelta(minutes=i) for i in range(SPARK_MINUTES)]
    overrides = _standing_overrides(circuits)
    return [
        Tile(
            circuit=c,
            state=current_state(c, now),
            volumes=[volumes[c.pk].get(m, 0) for m in minutes],
            overrides=overrides.get(c.pk, []),
        )
        for c in circuits
    ]


def _standing_overrides(circuits: list[Circuit]) -> dict[int, list[CircuitOverride]]:
    if not circuits:
        return {}
    found: dict[int, list[CircuitOverride]] = defaultdict(list)
    standing = list(
        CircuitOverride.objects.active()
        .filter(
            service_id__in={c.service_id for c in circuits},
            circuit_name__in={c.name for c in circuits},
        )
        .select_related("environment")
    )
    for c in circuits:
        for o in standing:
            if (
                o.service_id == c.service_id
                and o.circuit_name == c.name
                and o.environment_id in (None, c.environment_id)
            ):
                found[c.pk].append(o)
    return found


def with_relations(queryset: Any) -> Any:
    return queryset.select_related(
        "service",
        "service__team",
        "environment",
        "protects_service",
        "protects_external",
        # health's row for the dependency (the vendor's state beside the circuit), by name.
        "protects_external__vendor_status",
    )


def render_tile(tile: Tile, *, oob: bool = False) -> str:
    return render_to_string("circuits/_tile.html", {"tile": tile, "oob": oob})


@dataclass
class CircuitPage:
    """Everything the circuit page shows besides the chart's history."""

    tile: Tile
    instances: list[CircuitInstanceState]
    transitions: list[CircuitTransition]
    stale_after: datetime

    @property
    def circuit(self) -> Circuit:
        return self.tile.circuit


def circuit_page(circuit: Circuit) -> CircuitPage:
    instances = list(
        circuit.instance_states.select_related("instance").order_by(
            "stale", "-state_since", "instance_key"
        )[:MAX_INSTANCE_ROWS]
    )
    instances.sort(key=lambda s: (s.stale, -SEVERITY[s.state], s.instance_key))
    transitions = list(circuit.transitions.all()[:TRANSITION_ROWS])
    return CircuitPage(
        tile=tiles([circuit])[0],
        instances=instances,
        transitions=transitions,
        stale_after=timezone.now() - timedelta(seconds=settings.SIGNALBOX_CIRCUITS_STALE_SECONDS),
    )


def render_circuit_parts(page: CircuitPage) -> str:
    """The live parts of a circuit page, as out-of-band swaps."""
    return render_to_string("circuits/_circuit_parts.html", {"page": page, "oob": True})


def chart_point(circuit: Circuit) -> dict[str, Any]:
    """The latest minute for the page's chart to append or update."""
    return {
        "t": int(timezone.now().replace(second=0, microsecond=0).timestamp()),
        "failure_rate": circuit.failure_rate,
        "slow_call_rate": circuit.slow_call_rate,
        "call_volume": circuit.call_volume,
        "open_instances": circuit.open_instances,
    }
