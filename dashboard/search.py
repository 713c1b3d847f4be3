"""Jump-to search over services, teams and rollouts: three bounded queries per keystroke."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.urls import reverse

from catalog.models import Service, Team
from deployments.models import Rollout

PER_KIND = 6
MAX_QUERY = 100
ROLLOUT_NUMBER = re.compile(r"^#?(\d{1,12})$")


@dataclass(frozen=True)
class Hit:
    """One search result: what it is, what to call it, a line of detail, where it goes."""

    kind: str  # "service" | "team" | "rollout"
    label: str
    detail: str
    url: str


def _ranked(queryset: QuerySet[Any], query: str) -> QuerySet[Any]:
    """Exact slug, then slug prefix, then name prefix, then anywhere in slug or name."""
    ranked: QuerySet[Any] = (
        queryset.filter(Q(slug__icontains=query) | Q(name__icontains=query))
        .annotate(
            rank=Case(
                When(slug__iexact=query, then=Value(0)),
                When(slug__istartswith=query, then=Value(1)),
                When(name__istartswith=query, then=Value(2)),
                default=Value(3),
                output_field=IntegerField(),
            )
        )
        .order_by("rank", "slug")
    )
    return ranked


def services(query: str, limit: int = PER_KIND) -> list[Hit]:
    found = _ranked(Service.objects.select_related("team"), query)[:limit]
    return [
        Hit("service", s.slug, f"{s.name} · team {s.team.slug}", s.get_absolute_url())
        for s in found
    ]


def teams(query: str, limit: int = PER_KIND) -> list[Hit]:
    found = _ranked(Team.objects.all(), query)[:limit]
    return [Hit("team", t.slug, t.name, t.get_absolute_url()) for t in found]


def rollouts(query: str, limit: int = PER_KIND) -> list[Hit]:
    """By number (`42`, `#42`), else by service slug or target version, newest first."""
    number = ROLLOUT_NUMBER.match(query)
    queryset = Rollout.objects.select_related("service", "environment")
    if number:
        queryset = queryset.filter(pk=int(number.group(1)))
    else:
        queryset = queryset.filter(
            Q(service__slug__icontains=query) | Q(to_version__istartswith=query)
        )
    return [
        Hit(
            "rollout",
            f"#{r.pk} {r.service.slug} → {r.to_version}",
            f"{r.environment.slug} · {r.get_state_display().lower()}",
            reverse("deployments:rollout", args=[r.pk]),
        )
        for r in queryset.order_by("-created_at", "-id")[:limit]
    ]


def search(query: str) -> list[Hit]:
    """Services first (what on-call looks for most), then teams, then rollouts."""
    query = query.strip()[:MAX_QUERY]
    if not query:
        return []
    return [*services(query), *teams(query), *rollouts(query)]
