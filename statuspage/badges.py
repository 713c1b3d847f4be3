"""SVG badges (the flat two-part kind READMEs carry): a label and a value in its colour."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from health.choices import ServiceStatus
from health.models import ServiceHealth
from health.rollups import uptime
from statuspage.choices import BADGE_WINDOWS, BadgeKind
from statuspage.models import Badge

# Colours with white text at 4.5:1 or better.
GREEN, AMBER, RED, GREY, LABEL = "#1b7a32", "#9a5b00", "#b3261e", "#5f6368", "#444d56"
STATE_COLOURS = {
    ServiceStatus.HEALTHY: GREEN,
    ServiceStatus.DEGRADED: AMBER,
    ServiceStatus.DOWN: RED,
    ServiceStatus.UNKNOWN: GREY,
}
STATE_WORDS = {
    ServiceStatus.HEALTHY: "up",
    ServiceStatus.DEGRADED: "degraded",
    ServiceStatus.DOWN: "down",
    ServiceStatus.UNKNOWN: "unknown",
}
# Verdana 11 px, roughly: wide letters and narrow ones averaged (shields.io measures).
CHAR_WIDTH = 6.8
PADDING = 10


@dataclass(frozen=True)
class Reading:
    label: str
    value: str
    colour: str


def read(badge: Badge, in_maintenance: bool) -> Reading:
    """What the badge says now: one query for a state, one for an uptime."""
    label = badge.shown_label
    if badge.kind == BadgeKind.STATE:
        if in_maintenance:
            return Reading(label, "maintenance", GREY)
        health = ServiceHealth.objects.filter(
            service_id=badge.service_id, environment_id=badge.environment_id
        ).first()
        state = ServiceStatus(health.status) if health else ServiceStatus.UNKNOWN
        return Reading(label, STATE_WORDS[state], STATE_COLOURS[state])
    window = BADGE_WINDOWS[BadgeKind(badge.kind)]
    figure = uptime(badge.service_id, badge.environment_id)[window]
    label = f"{label} {window}"
    if figure is None:
        return Reading(label, "no data", GREY)
    colour = GREEN if figure >= 99.9 else AMBER if figure >= 99.0 else RED
    return Reading(label, f"{figure:.2f}%", colour)


def svg(reading: Reading) -> str:
    left = round(len(reading.label) * CHAR_WIDTH + PADDING)
    right = round(len(reading.value) * CHAR_WIDTH + PADDING)
    width = left + right
    label, value = escape(reading.label), escape(reading.value)
    title = f"{label}: {value}"
    spoken = escape(f"{reading.label}: {reading.value}", {'"': "&quot;"})
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{spoken}"><title>{title}</title>'
        f'<rect width="{left}" height="20" fill="{LABEL}"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{reading.colour}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" '
        'font-size="11">'
        f'<text x="{left / 2:.1f}" y="14">{label}</text>'
        f'<text x="{left + right / 2:.1f}" y="14">{value}</text>'
        "</g></svg>"
    )
