"""Every HTTP notifier (Slack, PagerDuty, webhook) goes through the outbound guard, at save
time (400 naming the field) and at every send (failed without a retry, nothing sent)."""

from __future__ import annotations

from typing import Any

import pytest

from alerts import channels
from alerts.models import Channel
from alerts.tests.conftest import ROUTING_KEY, WEBHOOK_SECRET
from controlplane.tests.outbound_targets import (
    LOOPBACK_NAME,
    METADATA,
    METADATA_MAPPED,
    redirector,
    refuse_loopback,
)

pytestmark = pytest.mark.django_db
NOTIFIERS = ["slack", "pagerduty", "webhook"]


def point(alerting: Any, kind: str, url: str) -> Channel:
    """The team's channel of `kind`, pointed at `url` behind the API's back."""
    channel: Channel = getattr(alerting, kind)
    if kind == "slack":
        channel.secret = url
    else:
        channel.url = url
    channel.save()
    return channel


def save(api_as: Any, kind: str, url: str) -> Any:
    body: dict[str, Any] = {"team": "payments", "name": f"new-{kind}", "kind": kind}
    if kind == "slack":
        body["secret"] = url
    else:
        body.update(url=url, secret=ROUTING_KEY if kind == "pagerduty" else WEBHOOK_SECRET)
    return api_as("owner").post("/api/v1/alerts/channels", body, format="json")


def field_of(kind: str) -> str:
    return "secret" if kind == "slack" else "url"


@pytest.mark.parametrize("kind", NOTIFIERS)
@pytest.mark.parametrize("host", [METADATA, f"[{METADATA_MAPPED}]"])
def test_no_notifier_posts_to_the_metadata_address(
    api_as: Any, alerting: Any, kind: str, host: str
) -> None:
    url = f"http://{host}/services/T/B/x"
    answer = save(api_as, kind, url)
    assert answer.status_code == 400
    assert "cloud metadata" in answer.json()["error"]["fields"][field_of(kind)][0]
    result = channels.send_test(point(alerting, kind, url))
    assert (result.ok, result.retryable) == (False, False)
    assert "is a cloud metadata address" in result.error


@pytest.mark.parametrize("kind", NOTIFIERS)
def test_no_notifier_posts_to_loopback_by_name_where_loopback_is_not_allowed(
    api_as: Any, alerting: Any, settings: Any, kind: str
) -> None:
    refuse_loopback(settings)
    url = f"http://{LOOPBACK_NAME}:{alerting.receiver.port}/{kind}"
    answer = save(api_as, kind, url)
    assert answer.status_code == 400
    assert "is loopback" in answer.json()["error"]["fields"][field_of(kind)][0]
    result = channels.send_test(point(alerting, kind, url))
    assert (result.ok, result.retryable) == (False, False)
    assert "is loopback" in result.error
    assert alerting.receiver.to(f"/{kind}") == []


@pytest.mark.parametrize("kind", NOTIFIERS)
def test_no_notifier_follows_a_redirect_to_the_metadata_address(alerting: Any, kind: str) -> None:
    with redirector() as hook:
        result = channels.send_test(point(alerting, kind, hook.url(f"/{kind}")))
    assert not result.ok
    assert result.status_code == 302
    assert hook.paths == [f"/{kind}"]
