"""The team page's context: services, rollouts, incidents, circuits, events and settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest

from catalog.models import Team
from catalog.permissions import Access
from dashboard import sections, team_forms
from dashboard import team as team_data


def page_context(
    request: HttpRequest,
    team: Team,
    acting_teams: set[int] | bool,
    bound: Mapping[Any, Any] | None = None,
) -> dict[str, Any]:
    """Everything the team page shows; `bound` re-shows forms a failed POST filled in."""
    page = Paginator(team.services.order_by("slug"), team_data.SERVICES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    settings = team_forms.settings_context(team, Access.of(request), bound)
    return {
        **sections.team_services_context(team, list(page.object_list)),
        **sections.team_sections_context(team),
        **settings,
        "page": page,
        "events": team_data.recent_events(team),
        "acting_teams": acting_teams,
        "can_configure": settings["can_manage"],
    }
