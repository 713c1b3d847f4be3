"""Template helpers for health: a status reads as icon + word + colour, never colour alone."""

from __future__ import annotations

import json

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from health.choices import STATUS_ICONS

register = template.Library()


@register.simple_tag
def status_badge(status: str) -> SafeString:
    icon = STATUS_ICONS.get(status, "?")  # type: ignore[call-overload]
    return format_html('<span class="sb-status sb-status-{}">{} {}</span>', status, icon, status)


def dependency_key(service_slug: str, environment_slug: str) -> str:
    return f"{service_slug}@{environment_slug}"


@register.simple_tag
def dependency_badge(service_slug: str, environment_slug: str, status: str) -> SafeString:
    """A dependency's status on another service's page; its live updates find it by key
    (`dashboard.live.dependency_badges`), wherever and however often it shows."""
    return format_html(
        '<span class="sb-dep-health" data-dep-health="{}">{}</span>',
        dependency_key(service_slug, environment_slug),
        status_badge(status),
    )


@register.filter
def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


@register.filter
def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}%"


@register.filter
def pretty_json(value: object) -> str:
    """A probe's stored output, indented for reading (the template escapes it)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)
