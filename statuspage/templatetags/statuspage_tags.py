"""Filters of the public status page."""

from __future__ import annotations

from django import template

from statuspage.choices import ComponentStatus
from statuspage.models import PublicIncident
from statuspage.summary import Component, PageView

register = template.Library()


@register.filter
def components_of(view: PageView, incident: PublicIncident) -> list[Component]:
    return view.components_of(incident)


@register.filter
def status_word(status: str) -> str:
    return str(ComponentStatus(status).label)
