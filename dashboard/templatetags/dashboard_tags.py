"""Template helpers of the dashboard's pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone

from circuits.choices import AggregateState

register = template.Library()


@register.filter
def may_act(incident: Any, acting_teams: Any) -> bool | None:
    """Whether the viewer may act on this incident: `acting_teams` is the set of team ids they
    act for, True for an admin, None in a pushed fragment (rendered once for every viewer:
    the buttons show and the server decides)."""
    if acting_teams is True:
        return True
    if not isinstance(acting_teams, set):
        return None
    return incident.team_id in acting_teams


@register.filter
def circuit_label(state: str) -> str:
    """'half_open' -> 'Half open' (an aggregate circuit state's display name)."""
    return str(AggregateState(state).label) if state in AggregateState.values else state


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    """`versions|get_item:env_id`: a dict's value by a key held in a variable."""
    return mapping.get(key, []) if isinstance(mapping, dict) else []


@register.filter
def for_how_long(since: datetime | None) -> str:
    """How long ago `since` was, short: '40 s', '12 min', '3 h 5 min', '2 d 4 h'."""
    if since is None:
        return "—"
    seconds = max(0, int((timezone.now() - since).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"


@register.filter
def unhealthy(counts: dict[str, int] | None) -> int:
    """Down plus degraded, from service counts per status."""
    counts = counts or {}
    return int(counts.get("down", 0)) + int(counts.get("degraded", 0))
