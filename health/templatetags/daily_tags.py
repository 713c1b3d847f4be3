"""A tile's last day: its 24-hour uptime and an SVG sparkline of hourly latency.

The page computes every tile's `DaySummary` in one query (`health.rollups.day_summaries`)
and passes the dict as `days`; `{% tile_day days health %}` only looks its tile's up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from health.rollups import NO_PROBES, DaySummary

register = template.Library()

SPARK_WIDTH, SPARK_HEIGHT = 96, 24
EN_DASH = "\u2013"  # between the ends of a range


def uptime_text(uptime: float | None) -> str:
    """ "99.95 %": rounded down, so 99.999 % never reads as 100 %; "—" without probes."""
    if uptime is None:
        return "—"
    if uptime >= 100:
        return "100 %"
    return f"{Decimal(str(uptime)).quantize(Decimal('0.01'), rounding=ROUND_DOWN)} %"


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def sparkline_label(points: Sequence[float | None]) -> str:
    values = [p for p in points if p is not None]
    if not values:
        return "latency, last 24 h: no probes"
    low, high = _ms(min(values)), _ms(max(values))
    span = low if low == high else f"{low}{EN_DASH}{high}"
    return f"latency, last 24 h: {span} ms"


def sparkline(
    points: Sequence[float | None], width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT
) -> SafeString:
    """One polyline per run of hours with a latency (a gap where an hour has none; a lone
    hour is a dot), scaled from 0 to the highest point, oldest on the left."""
    label = sparkline_label(points)
    values = [p for p in points if p is not None]
    top = max(values, default=0) or 1.0
    pad = 1.5  # half the stroke, and a lone hour's dot, stay inside the box
    step = (width - 2 * pad) / max(len(points) - 1, 1)

    def xy(index: int, value: float) -> tuple[str, str]:
        return f"{pad + index * step:.1f}", f"{height - pad - value / top * (height - 2 * pad):.1f}"

    runs: list[list[tuple[str, str]]] = []
    previous: float | None = None
    for index, value in enumerate(points):
        if value is not None:
            if previous is None:
                runs.append([])
            runs[-1].append(xy(index, value))
        previous = value
    lines = format_html_join(
        "",
        '<polyline points="{}"/>',
        ((" ".join(f"{x},{y}" for x, y in run),) for run in runs if len(run) > 1),
    )
    dots = format_html_join(
        "", '<circle cx="{}" cy="{}" r="1.5"/>', (run[0] for run in runs if len(run) == 1)
    )
    # A faint axis across the whole day: the empty stretches read as hours without probes.
    axis = format_html(
        '<line class="sb-spark-axis" x1="0" y1="{0}" x2="{1}" y2="{0}"/>', height - 0.5, width
    )
    return format_html(
        '<svg class="sb-spark-latency" viewBox="0 0 {0} {1}" width="{0}" height="{1}" '
        'role="img" aria-label="{2}"><title>{2}</title>{3}{4}{5}</svg>',
        width,
        height,
        label,
        axis,
        lines,
        dots,
    )


@register.inclusion_tag("health/partials/tile_day.html")
def tile_day(days: Mapping[tuple[int, int], DaySummary] | None, health: Any) -> dict[str, Any]:
    """The tile's uptime and sparkline, from the page's `days` (NO_PROBES if absent)."""
    day = (days or {}).get((health.service_id, health.environment_id), NO_PROBES)
    return {
        "health": health,
        "uptime": day.uptime,
        "uptime_text": uptime_text(day.uptime),
        "sparkline": sparkline(day.latency_ms),
    }
