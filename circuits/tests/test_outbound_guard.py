"""Prometheus and Hystrix scrapes go through the outbound guard: when a target is saved
(400 naming `url`) and at every scrape (a reasoned error on the target, nothing fetched)."""

from __future__ import annotations

from typing import Any

import pytest

from circuits.choices import ScrapeKind
from circuits.ingest import scrape as scraping
from circuits.models import ScrapeTarget
from controlplane.tests.outbound_targets import (
    LOOPBACK_NAME,
    METADATA,
    METADATA_MAPPED,
    redirector,
    refuse_loopback,
)

pytestmark = pytest.mark.django_db
KINDS = [ScrapeKind.PROMETHEUS, ScrapeKind.HYSTRIX]


def save(api_as: Any, kind: str, url: str) -> Any:
    return api_as("owner").post(
        "/api/v1/circuits/scrape-targets",
        {"kind": kind, "url": url, "service": "checkout", "environment": "production"},
        format="json",
    )


def stored(world: Any, kind: str, url: str) -> ScrapeTarget:
    """A target as if saved before its address became forbidden (rebound, policy changed)."""
    return ScrapeTarget.objects.create(
        kind=kind, url=url, service=world.service, environment=world.production, instance_key="x"
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("host", "reason"),
    [(METADATA, "cloud metadata"), (f"[{METADATA_MAPPED}]", "cloud metadata")],
)
def test_a_metadata_target_is_refused_when_saved_and_when_scraped(
    api_as: Any, world: Any, kind: str, host: str, reason: str
) -> None:
    url = f"http://{host}/metrics"
    answer = save(api_as, kind, url)
    assert answer.status_code == 400
    assert reason in answer.json()["error"]["fields"]["url"][0]
    target = stored(world, kind, url)
    scraping.scrape([target.pk])
    target.refresh_from_db()
    assert reason in target.last_error
    assert target.consecutive_failures == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_resolving_to_loopback_is_refused_where_loopback_is_not_allowed(
    api_as: Any, world: Any, settings: Any, kind: str
) -> None:
    refuse_loopback(settings)
    url = f"http://{LOOPBACK_NAME}:9090/metrics"
    answer = save(api_as, kind, url)
    assert answer.status_code == 400
    assert "is loopback" in answer.json()["error"]["fields"]["url"][0]
    target = stored(world, kind, url)
    scraping.scrape([target.pk])
    target.refresh_from_db()
    assert "is loopback" in target.last_error


@pytest.mark.parametrize("kind", KINDS)
def test_a_redirect_to_the_metadata_address_is_not_followed(world: Any, kind: str) -> None:
    with redirector() as instance:
        target = stored(world, kind, instance.url("/metrics"))
        scraping.scrape([target.pk])
    target.refresh_from_db()
    assert target.last_error == "ValueError: answered HTTP 302"
    assert instance.paths == ["/metrics"]
