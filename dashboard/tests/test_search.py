"""Search: jump to a service, a team or a rollout by typing; a dropdown for htmx, a page without."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dashboard.search import search
from dashboard.tests.conftest import rollout

pytestmark = pytest.mark.django_db


def test_an_exact_slug_comes_first(world: Any, fleet: Any) -> None:
    fleet(20)
    hits = search("checkout")
    assert (hits[0].kind, hits[0].label, hits[0].url) == (
        "service", "checkout", "/catalog/services/checkout/",
    )  # fmt: skip


def test_it_finds_teams_by_name_and_services_by_part_of_their_slug(world: Any) -> None:
    assert [(h.kind, h.label) for h in search("paym")] == [("team", "payments")]
    assert ("service", "indexer") in [(h.kind, h.label) for h in search("dex")]


def test_it_finds_a_rollout_by_number_or_version(world: Any) -> None:
    started = rollout(world, world.service, to_version="4.2.0")
    assert [h.url for h in search(f"#{started.pk}")] == [f"/deployments/rollouts/{started.pk}/"]
    assert f"#{started.pk} checkout → 4.2.0" in [h.label for h in search("4.2")]


def test_it_asks_three_bounded_questions_whatever_the_fleet(world: Any, fleet: Any) -> None:
    fleet(500)
    with CaptureQueriesContext(connection) as queries:
        hits = search("svc")
    assert len(queries) == 3
    assert len([h for h in hits if h.kind == "service"]) == 6


def test_htmx_gets_the_dropdown_and_a_browser_gets_a_page(world: Any) -> None:
    client = Client()
    client.force_login(world.viewer)
    dropdown = client.get("/search", {"q": "check"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in dropdown and 'href="/catalog/services/checkout/"' in dropdown
    page = client.get("/search", {"q": "nothing-like-it"}).content.decode()
    assert "<html" in page and "Nothing matches" in page


def test_search_needs_a_login(world: Any) -> None:
    assert Client().get("/search", {"q": "checkout"}).status_code == 302
