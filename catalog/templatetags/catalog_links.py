"""Links from a page to where a service's logs are read, filled for what the page shows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone

from catalog.models import Service

register = template.Library()

# With no range given, the last hour: what an on-call engineer opens logs for.
DEFAULT_RANGE = timedelta(hours=1)


@register.simple_tag
def log_link(
    service: Service | None,
    environment: Any = "",
    instance: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
    margin_minutes: int = 0,
) -> str:
    """The service's log link for the range ("" without a service or a template).

    `environment` is an Environment or its slug; `end` defaults to now, `start` to an hour
    before `end`; `margin_minutes` widens a given range on both sides (the lead-up to an
    incident matters as much as the incident).
    Use: `{% log_link service env as url %}{% if url %}...{% endif %}`.
    """
    if service is None or not service.log_link_template:
        return ""
    margin = timedelta(minutes=margin_minutes)
    now = timezone.now()
    end = min(end + margin, now) if end else now
    start = start - margin if start else end - DEFAULT_RANGE
    return service.log_link(
        environment=getattr(environment, "slug", environment or ""),
        instance=instance,
        start=start,
        end=end,
    )
