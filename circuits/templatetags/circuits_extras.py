"""Template helpers for circuit pages: state icons and the chart's latest point."""

from __future__ import annotations

import json

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from circuits import fragments
from circuits.choices import AggregateState
from circuits.models import Circuit

register = template.Library()


@register.simple_tag
def state_icon(state: str) -> str:
    return fragments.LOOK[AggregateState(state)][0]


@register.simple_tag(name="chart_point")
def chart_point_tag(circuit: Circuit) -> SafeString:
    """A hidden element carrying the latest minute; the page's chart takes it when swapped in."""
    return format_html(
        '<div id="circuit-latest" hx-swap-oob="true" hidden data-point="{}"></div>',
        json.dumps(fragments.chart_point(circuit)),
    )
