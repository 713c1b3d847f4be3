"""Status pages' rows of the permission matrix (see catalog/tests/matrix.py, docs/api.md)."""

from __future__ import annotations

from typing import Any

from catalog.tests.matrix import Case, Row, allow, read
from statuspage.models import Badge, PublicIncident, StatusPage, StatusPageService

# The world's team (payments) owns the page and checkout: its owners, platform admins, and
# a payments token with `write`.
TEAM_WRITERS = ("owner", "admin", "token:write")


def a_page(case: Case) -> None:
    world = case.world
    page = StatusPage.objects.create(
        slug="shop", title="Shop", team=world.team, environment=world.production
    )
    StatusPageService.objects.create(page=page, service=world.service, display_name="Checkout")
    case.made["page"] = page


def an_incident(case: Case) -> None:
    a_page(case)
    case.made["incident"] = PublicIncident.objects.create(page=case.made["page"], title="Slow")


def a_badge(case: Case) -> None:
    world = case.world
    case.made["badge"] = Badge.objects.create(service=world.service, environment=world.production)


def page_body(case: Case) -> dict[str, Any]:
    return {
        "slug": "new-page", "title": "New", "team": "payments", "environment": "production",
        "services": [{"service": "checkout"}],
    }  # fmt: skip


def pk_of(name: str) -> Any:
    return lambda case: {"pk": case.made[name].pk}


def shop(case: Case) -> dict[str, Any]:
    return {"slug": "shop"}


PERMISSION_MATRIX = [
    Row("status-page-list", "GET", read(), setup=a_page),
    Row("status-page-list", "POST", allow(*TEAM_WRITERS, status=201), body=page_body),
    Row("status-page-detail", "GET", read(), kwargs=shop, setup=a_page),
    Row(
        "status-page-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=shop,
        body=lambda c: {"title": "Our shop"},
        setup=a_page,
    ),
    Row(
        "status-page-detail", "DELETE", allow(*TEAM_WRITERS, status=204), kwargs=shop, setup=a_page
    ),
    Row("public-incident-list", "GET", read(), setup=an_incident),
    Row(
        "public-incident-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        body=lambda c: {"page": "shop", "title": "Card payments fail", "services": ["checkout"]},
        setup=a_page,
    ),
    Row("public-incident-detail", "GET", read(), kwargs=pk_of("incident"), setup=an_incident),
    Row(
        "public-incident-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=pk_of("incident"),
        body=lambda c: {"status": "resolved"},
        setup=an_incident,
    ),
    Row(
        "public-incident-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204),
        kwargs=pk_of("incident"),
        setup=an_incident,
    ),
    Row("badge-list", "GET", read(), setup=a_badge),
    Row(
        "badge-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        body=lambda c: {"service": "checkout", "environment": "production"},
    ),
    Row("badge-detail", "GET", read(), kwargs=pk_of("badge"), setup=a_badge),
    Row(
        "badge-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=pk_of("badge"),
        body=lambda c: {"label": "Card API"},
        setup=a_badge,
    ),
    Row(
        "badge-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204),
        kwargs=pk_of("badge"),
        setup=a_badge,
    ),
    Row("badge-rotate", "POST", allow(*TEAM_WRITERS), kwargs=pk_of("badge"), setup=a_badge),
]
