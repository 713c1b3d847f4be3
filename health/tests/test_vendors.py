"""The vendor poller against the demo fleet's real status page process: state mapping,
events, ETag/304, backoff and unknown after failures, our probe (docs/external.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from catalog.choices import StatusSource
from catalog.models import ExternalDependency
from controlplane.models import Event
from health import vendors
from health.choices import CheckStatus, ExternalEvent, ExternalState
from health.models import VendorStatus
from health.tests.statuspage_server import VendorPage, closed_port_url, running_statuspage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def page() -> Iterator[VendorPage]:
    with running_statuspage() as vendor:
        yield vendor


@pytest.fixture(autouse=True)
def fresh_page(page: VendorPage) -> None:
    page.control("reset")


def _stripe(page: VendorPage, **fields: Any) -> ExternalDependency:
    values: dict[str, Any] = {
        "slug": "stripe",
        "name": "Stripe",
        "status_source": StatusSource.STATUSPAGE,
        "status_page_url": page.url,
        "status_components": ["API"],
        **fields,
    }
    return ExternalDependency.objects.create(**values)


def _events() -> list[Event]:
    return list(Event.objects.filter(action=ExternalEvent.STATUS_CHANGED).order_by("id"))


def test_a_component_in_major_outage_moves_the_state_and_publishes_once(page: VendorPage) -> None:
    # given a dependency watching the vendor's API component, polled once
    stripe = _stripe(page)
    assert vendors.poll_now(stripe).state == ExternalState.OPERATIONAL
    # when the vendor marks the API as in major outage
    page.set_component("API", "major_outage")
    outcome = vendors.poll_now(stripe)
    # then the dependency is in major outage and one event says so, in the agreed shape
    assert outcome.changed and outcome.state == ExternalState.MAJOR_OUTAGE
    status = VendorStatus.objects.get(dependency=stripe)
    assert status.summary == "API: major outage"
    assert status.indicator == "critical"
    first, second = _events()
    assert first.payload["previous"] == ExternalState.UNKNOWN
    assert second.payload == {
        "dependency": "stripe",
        "state": "major_outage",
        "previous": "operational",
        "source": "statuspage",
        "summary": "API: major outage",
        "vendor_indicator": "critical",
        "our_probe": None,
    }
    assert second.subject_label == "stripe"


def test_a_component_we_do_not_watch_does_not_move_the_state(page: VendorPage) -> None:
    stripe = _stripe(page)
    vendors.poll_now(stripe)
    page.set_component("Dashboard", "major_outage")
    assert not vendors.poll_now(stripe).changed
    status = VendorStatus.objects.get(dependency=stripe)
    assert status.state == ExternalState.OPERATIONAL
    assert [c["name"] for c in status.other_components if c["status"] == "major_outage"] == [
        "Dashboard"
    ]


def test_without_a_mapping_the_overall_indicator_decides(page: VendorPage) -> None:
    stripe = _stripe(page, status_components=[])
    vendors.poll_now(stripe)
    page.set_component("Dashboard", "partial_outage")
    assert vendors.poll_now(stripe).state == ExternalState.PARTIAL_OUTAGE  # indicator "major"
    page.control(
        "incidents", {"name": "Payments failing", "impact": "critical", "components": ["API"]}
    )
    assert vendors.poll_now(stripe).state == ExternalState.MAJOR_OUTAGE
    status = VendorStatus.objects.get(dependency=stripe)
    (incident,) = status.incidents
    assert incident["name"] == "Payments failing"
    assert incident["shortlink"].startswith(page.url)
    assert incident["status"] == "investigating"


def test_an_unchanged_page_answers_304_keeps_the_state_and_publishes_nothing(
    page: VendorPage,
) -> None:
    stripe = _stripe(page)
    page.set_component("API", "degraded_performance")
    vendors.poll_now(stripe)
    status = VendorStatus.objects.get(dependency=stripe)
    assert status.etag.startswith('"') and status.state == ExternalState.DEGRADED
    published = len(_events())
    # when nothing changed on their side
    outcome = vendors.poll_now(stripe)
    # then the server said 304 and we kept what we had, without a new event
    assert outcome.not_modified and not outcome.changed
    status.refresh_from_db()
    assert status.state == ExternalState.DEGRADED
    assert status.components and status.fetched_at is not None
    assert len(_events()) == published
    # and a real change is seen again (a new ETag)
    page.set_component("API", "operational")
    assert vendors.poll_now(stripe).state == ExternalState.OPERATIONAL


def test_an_unreachable_page_backs_off_and_is_unknown_after_n_failures(page: VendorPage) -> None:
    stripe = _stripe(page)
    vendors.poll_now(stripe)
    stripe.status_page_url = closed_port_url()
    stripe.save()
    delays = []
    for failure in range(1, vendors.FAILURES_BEFORE_UNKNOWN):
        before = timezone.now()
        assert not vendors.poll_now(stripe).changed
        status = VendorStatus.objects.get(dependency=stripe)
        assert status.failures == failure
        assert status.state == ExternalState.OPERATIONAL  # not yet: one failure is not news
        assert "ConnectError" in status.last_error
        delays.append((status.next_due_at - before).total_seconds())
    # exponential: each wait at least half of interval * 2**failures, never more than the cap
    interval = stripe.status_interval_seconds
    assert delays[0] >= interval and delays[1] >= 2 * interval
    assert all(d <= vendors.MAX_BACKOFF_SECONDS for d in delays)
    outcome = vendors.poll_now(stripe)
    assert outcome.changed and outcome.state == ExternalState.UNKNOWN
    last = _events()[-1]
    assert last.payload["state"] == "unknown" and last.payload["previous"] == "operational"
    assert "has not answered 3 polls" in last.payload["summary"]


def test_a_page_answering_errors_counts_as_failures_too(page: VendorPage) -> None:
    stripe = _stripe(page)
    page.control("page", {"status": 503})
    for _ in range(vendors.FAILURES_BEFORE_UNKNOWN):
        vendors.poll_now(stripe)
    status = VendorStatus.objects.get(dependency=stripe)
    assert status.state == ExternalState.UNKNOWN and status.last_error.startswith("HTTP 503")
    page.control("page", {"status": 200})
    assert vendors.poll_now(stripe).state == ExternalState.OPERATIONAL
    status.refresh_from_db()
    assert status.failures == 0


def test_backoff_is_jittered_and_capped() -> None:
    stripe = ExternalDependency(slug="x", name="x", status_interval_seconds=60)
    healthy = {round(vendors.next_delay(stripe, 0), 3) for _ in range(20)}
    assert len(healthy) > 1 and all(54 <= d <= 60 for d in healthy)
    assert all(vendors.next_delay(stripe, 12) <= vendors.MAX_BACKOFF_SECONDS for _ in range(20))
    assert all(vendors.next_delay(stripe, 12) >= vendors.MAX_BACKOFF_SECONDS / 2 for _ in range(20))


def test_a_probe_source_follows_our_probe(page: VendorPage) -> None:
    api = ExternalDependency.objects.create(
        slug="vendor-api",
        name="Vendor API",
        status_source=StatusSource.PROBE,
        probe_url=f"{page.url}/v1/ping",
    )
    assert vendors.poll_now(api).state == ExternalState.OPERATIONAL
    page.control("api", {"status": 503})
    # one failure is not enough (threshold 2), the second is
    assert vendors.poll_now(api).state == ExternalState.OPERATIONAL
    outcome = vendors.poll_now(api)
    assert outcome.state == ExternalState.MAJOR_OUTAGE
    event = _events()[-1]
    assert event.payload["source"] == "probe" and event.payload["our_probe"] == "fail"
    assert event.payload["vendor_indicator"] is None
    assert "HTTP 503, expected 200" in event.payload["summary"]


def test_our_probe_failing_while_their_page_says_operational_is_ahead_of_the_vendor(
    page: VendorPage,
) -> None:
    stripe = _stripe(page, probe_url=f"{page.url}/v1/ping")
    vendors.poll_now(stripe)
    page.control("api", {"status": 500})
    vendors.poll_now(stripe)
    vendors.poll_now(stripe)
    status = VendorStatus.objects.get(dependency=stripe)
    assert status.state == ExternalState.OPERATIONAL
    assert status.probe_status == CheckStatus.FAIL
    ahead = status.ahead_of_vendor()
    assert ahead is not None and ahead["reasons"] == ["our probes fail"]
    assert status.probe_failing_since is not None
    assert ahead["since"] == status.probe_failing_since.isoformat()
    # once their page admits it, we are no longer ahead
    page.set_component("API", "major_outage")
    vendors.poll_now(stripe)
    status.refresh_from_db()
    assert status.ahead_of_vendor() is None


def test_claim_due_leases_each_due_row_once(page: VendorPage) -> None:
    stripe = _stripe(page)
    ExternalDependency.objects.create(slug="unwatched", name="Unwatched")
    assert vendors.ensure_rows() == 1
    ids, lease = vendors.claim_due()
    assert ids == [VendorStatus.objects.get(dependency=stripe).pk]
    assert vendors.claim_due()[0] == []  # leased: a second claimer gets nothing
    outcome = vendors.poll(ids[0], lease)
    assert outcome.polled
    status = VendorStatus.objects.get(pk=ids[0])
    assert status.lease_until is None
    assert status.next_due_at > timezone.now() + timedelta(seconds=50)
    # a redelivered message with the old lease does nothing
    assert not vendors.poll(ids[0], lease).polled


def test_a_state_change_renders_the_dependency_page_badge_and_list_row(page: VendorPage) -> None:
    from controlplane.live import Tile
    from health.live import EXTERNAL_LIST_TOPIC, external_fragments

    stripe = _stripe(page)
    vendors.poll_now(stripe)
    page.set_component("API", "partial_outage")
    vendors.poll_now(stripe)
    fragments = list(external_fragments(_events()[-1]))
    rendered = {f.topic: f.render() for f in fragments if isinstance(f, Tile)}
    assert set(rendered) == {"external:stripe", EXTERNAL_LIST_TOPIC}
    assert f'id="vendor-state-{stripe.pk}" hx-swap-oob="outerHTML"' in rendered["external:stripe"]
    assert "sb-status-partial_outage" in rendered["external:stripe"]
    assert f'id="vendor-row-{stripe.pk}"' in rendered[EXTERNAL_LIST_TOPIC]


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    # The enqueued poll runs in this process (no worker here): the same code a worker runs.
    from controlplane.celery import app

    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False


def test_the_beat_task_polls_every_due_dependency(page: VendorPage, eager_tasks: None) -> None:
    from health import tasks

    stripe = _stripe(page)
    page.set_component("API", "under_maintenance")
    assert tasks.claim_due_vendors() == 1
    status = VendorStatus.objects.get(dependency=stripe)
    assert status.state == ExternalState.MAINTENANCE and status.lease_until is None
    assert tasks.claim_due_vendors() == 0  # not due again before its interval
