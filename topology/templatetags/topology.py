"""Template helpers of the dependency map: tooltips, health marks, lookups by node id."""

from __future__ import annotations

from typing import Any

from django import template

from circuits.choices import AggregateState
from topology.graph import Edge, Graph, Node

register = template.Library()

# The mark beside a colour, so health never rests on colour alone.
HEALTH_MARKS = {"healthy": "✓", "degraded": "!", "down": "✕", "unknown": "?"}


@register.simple_tag
def health_mark(health: str) -> str:
    return HEALTH_MARKS.get(health, "?")


@register.filter
def get_node(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key)


@register.filter
def circuit_label(state: str) -> str:
    return AggregateState(state).label.lower() if state in AggregateState.values else state


@register.filter
def node_summary(node: Node) -> str:
    """A node's tooltip: what it is, who owns it, its health."""
    if node.kind == "service":
        return f"{node.name} ({node.slug}): team {node.team}, tier {node.tier}, {node.health}"
    what = "external dependency" if node.kind == "external" else "seen only in traces"
    return f"{node.slug}: {what}; click for who is hurt when it is down"


@register.filter
def edge_summary(edge: Edge, graph: Graph) -> str:
    """An edge's tooltip: calls/min, error %, p99, circuit state and where it was learnt."""
    caller, callee = graph.nodes[edge.source].slug, graph.nodes[edge.target].slug
    parts = [f"{caller} → {callee}"]
    if edge.traces is not None:
        rate = edge.traces.error_rate or 0.0
        p99 = edge.traces.p99_ms
        parts.append(
            f"{edge.traces.calls_per_minute:.1f} calls/min, {rate:.1f}% errors, "
            + (f"p99 {p99:.0f} ms" if p99 is not None else "p99 unknown")
        )
    else:
        parts.append("not seen in traces")
    if edge.circuits:
        names = ", ".join(f"{c.name}@{c.environment}" for c in edge.circuits)
        parts.append(f"circuit {circuit_label(edge.circuit_state)} ({names})")
    parts.append("sources: " + ", ".join(edge.sorted_sources))
    return "; ".join(parts)
