"""Filters of the public status page."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from statuspage.choices import ComponentStatus
from statuspage.models import PublicIncident
from statuspage.summary import Component, Day, PageView

register = template.Library()


@register.filter
def components_of(view: PageView, incident: PublicIncident) -> list[Component]:
    return view.components_of(incident)


@register.filter
def status_word(status: str) -> str:
    return str(ComponentStatus(status).label)


@register.filter
def uptime_bars(component: Component) -> SafeString:
    """The component's 90 bars. Built here rather than in a template loop: 200 services
    make 18,000 bars, which the template engine took over a second to render; most bars
    of most services say the same (a day at 100%), so each distinct bar is built once."""
    return mark_safe("".join(_bar(day.day, day.uptime) for day in component.days))  # noqa: S308


@lru_cache(maxsize=8192)
def _bar(day: date, uptime: float | None) -> str:
    bar = Day(day, uptime)
    label = escape(bar.label)
    return f'<li class="sp-bar" data-level="{bar.level}" tabindex="0" aria-label="{label}"></li>'
