"""The rule kinds, one small class each, and lookups by kind and by event action."""

from __future__ import annotations

from alerts.models import Rule
from alerts.rules.base import Kind
from alerts.rules.events import InstanceFlapping, RolloutOutcome
from alerts.rules.external import ExternalStatus
from alerts.rules.scaling import ScalingChurn
from alerts.rules.slo import SloBurn
from alerts.rules.state import CircuitOpen, Heartbeat, RolloutStuck, ServiceState

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        ServiceState(),
        InstanceFlapping(),
        RolloutOutcome(),
        RolloutStuck(),
        CircuitOpen(),
        Heartbeat(),
        SloBurn(),
        ScalingChurn(),
        ExternalStatus(),
    )
}

LISTENED_ACTIONS = frozenset(action for kind in KINDS.values() for action in kind.listens)


def kind_of(rule: Rule) -> Kind:
    return KINDS[rule.kind]


def kinds_listening(action: str) -> list[str]:
    return [name for name, kind in KINDS.items() if action in kind.listens]
