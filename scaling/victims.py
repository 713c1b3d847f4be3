"""Choosing which instances leave on scale-in, deliberately and with the reason written down.

Never one holding a protection (it asked, ECS-style, not to be chosen), never one reporting
work in flight, never below the group's min. Among the rest: the lowest reported deletion
cost first (like Kubernetes' pod-deletion-cost), then the least loaded, then the oldest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from catalog.models import Instance
from scaling.choices import DELETION_COST, IN_FLIGHT, REPORTED_NAMES, Source
from scaling.models import Protection

LOAD = REPORTED_NAMES[Source.CPU]


@dataclass(frozen=True)
class Choice:
    """The instances chosen, why each, and why the others were passed over."""

    chosen: list[tuple[Instance, str]]
    spared: list[tuple[Instance, str]]


def choose(
    candidates: list[Instance],
    how_many: int,
    readings: dict[int, dict[str, float]],
    now: datetime,
) -> Choice:
    """Up to `how_many` of `candidates` to terminate (fewer when too many are spared)."""
    protected = {
        p.instance_id: p for p in Protection.objects.filter(instance__in=candidates, until__gt=now)
    }
    spared: list[tuple[Instance, str]] = []
    eligible: list[Instance] = []
    for instance in candidates:
        values = readings.get(instance.pk, {})
        if instance.pk in protected:
            until = protected[instance.pk].until
            spared.append((instance, f"protected until {until:%H:%M:%S} UTC by its own request"))
        elif values.get(IN_FLIGHT, 0) > 0:
            spared.append((instance, f"reports {values[IN_FLIGHT]:g} in-flight work"))
        else:
            eligible.append(instance)

    def order(instance: Instance) -> tuple[float, float, float]:
        values = readings.get(instance.pk, {})
        return (
            values.get(DELETION_COST, 0.0),
            values.get(LOAD, 0.0),
            instance.registered_at.timestamp(),
        )

    ranked = sorted(eligible, key=order)
    chosen = [(i, _why(i, readings.get(i.pk, {}))) for i in ranked[:how_many]]
    return Choice(chosen, spared)


def _why(instance: Instance, values: dict[str, float]) -> str:
    parts = [f"deletion cost {values.get(DELETION_COST, 0.0):g}"]
    if LOAD in values:
        parts.append(f"CPU {values[LOAD]:g} %")
    parts.append(f"registered {instance.registered_at:%Y-%m-%d %H:%M:%S} UTC")
    return "lowest-ranked: " + ", ".join(parts)
