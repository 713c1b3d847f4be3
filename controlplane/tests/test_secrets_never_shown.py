"""Stored credentials are never shown in full: not by an API response, a page (the admin's
included), an event's payload or message, a log line or a delivery error. Known secrets are
set, the pages and the API are crawled as a platform admin and as a team owner, and every
answer is searched for them."""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from alerts import channels
from alerts.choices import ChannelKind
from alerts.models import Channel, DeliveryAttempt, Notification
from catalog.models import ApiToken
from controlplane.models import Event
from deployments.choices import RouterKind
from deployments.models import TrafficRouter

# Each secret, and the distinctive pieces of it that must never appear either (a mask shows
# the last four characters only, so a longer piece is a leak).
SLACK_URL = "https://hooks.slack.com/services/T0SECRET/B0SECRET/XSecretSlackToken4242"
PAGERDUTY_KEY = "R0UTINGKEYSECRET0123456789abcdef"
WEBHOOK_SECRET = "whsec-Signing-Secret-0123456789-xyz"
AWS_CREDENTIALS = "AKIASECRETKEYID00001:awsSecretAccess/Key+0123456789abcdef"
# An Apprise URL (Teams workflow): its workflow id and signature are the secret parts.
APPRISE_URL = "workflows://127.0.0.1:9/WorkflowSecretId0042/SigSecretPart0123456789/"
PIECES = [
    "T0SECRET/B0SECRET",
    "XSecretSlackToken",
    PAGERDUTY_KEY[:20],
    WEBHOOK_SECRET[:20],
    "AKIASECRETKEYID",
    "awsSecretAccess",
    "WorkflowSecretId",
    "SigSecretPart",
]
MAX_PAGES = 400
SKIPPED = ("/logout", "/admin/logout", "/static/", "/admin/jsi18n")

pytestmark = pytest.mark.django_db


@pytest.fixture
def secrets(world: Any) -> list[str]:
    """The team's channels and an AWS router holding known secrets; plus an API token."""
    team = world.team
    Channel.objects.create(team=team, name="slack", kind=ChannelKind.SLACK, secret=SLACK_URL)
    Channel.objects.create(
        team=team,
        name="pd",
        kind=ChannelKind.PAGERDUTY,
        secret=PAGERDUTY_KEY,
        url="http://127.0.0.1:9/v2/enqueue",  # nothing listens: the send fails, with an error
    )
    Channel.objects.create(
        team=team,
        name="hook",
        kind=ChannelKind.WEBHOOK,
        secret=WEBHOOK_SECRET,
        url="http://127.0.0.1:9/hook",
    )
    Channel.objects.create(team=team, name="teams", kind=ChannelKind.APPRISE, secret=APPRISE_URL)
    TrafficRouter.objects.create(
        name="alb",
        kind=RouterKind.AWS_ALB,
        team=team,
        connection={"region": "eu-west-1"},
        credentials=AWS_CREDENTIALS,
    )
    _, token = ApiToken.issue(team=team, name="ci", scopes=["read", "write", "deploy"])
    return [*PIECES, token, token[8:24]]


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


def api_list_paths() -> Iterator[str]:
    """Every parameterless GET path under /api/v1/ that the URL configuration declares."""

    def walk(patterns: list[Any], prefix: str) -> Iterator[str]:
        for pattern in patterns:
            route = str(pattern.pattern).removeprefix("^").removesuffix("$")
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + route)
            elif isinstance(pattern, URLPattern) and not re.search(r"[<(\\\[]", route):
                yield "/" + prefix + route

    for path in walk(get_resolver().url_patterns, ""):
        if path.startswith("/api/v1/"):
            yield path


def crawl_pages(client: Client, start: list[str]) -> dict[str, str]:
    """Same-origin pages reachable by links from `start` (GET only, no logout)."""
    seen: dict[str, str] = {}
    queue = deque(start)
    while queue and len(seen) < MAX_PAGES:
        path = queue.popleft()
        if path in seen or path.startswith(SKIPPED):
            continue
        answer = client.get(path)
        seen[path] = answer.content.decode(errors="replace")
        if "html" not in answer.get("Content-Type", ""):
            continue
        for href in re.findall(r'href="([^"#]+)"', seen[path]):
            target = urlsplit(urljoin(path, href.replace("&amp;", "&")))
            if not target.netloc and target.path.startswith("/"):
                # The admin's sort and filter links show the same rows again: paths only.
                keep = target.query and not target.path.startswith("/admin/")
                queue.append(target.path + (f"?{target.query}" if keep else ""))
    return seen


def crawl_api(client: APIClient) -> dict[str, str]:
    """Every API list, and the detail of every listed item (by id and by slug)."""
    seen: dict[str, str] = {}
    for path in api_list_paths():
        answer = client.get(path)
        seen[path] = answer.content.decode(errors="replace")
        try:
            body = answer.json()
        except ValueError:
            continue
        items = body.get("results", []) if isinstance(body, dict) else body
        for item in items if isinstance(items, list) else []:
            for key in ("id", "slug"):
                if isinstance(item, dict) and key in item:
                    detail = f"{path}/{item[key]}"
                    seen[detail] = client.get(detail).content.decode(errors="replace")
    return seen


def test_no_page_api_answer_event_log_or_error_shows_a_stored_secret(
    world: Any, secrets: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # given every channel's test sent (they fail: the errors are recorded and logged)
    for channel in Channel.objects.all():
        channels.send_test(channel)
    answers: dict[str, str] = {}
    # when the dashboard and the admin are crawled by a platform admin and by the owner
    for person in (world.admin, world.owner):
        client = Client()
        client.force_login(person)
        pages = crawl_pages(client, ["/", "/admin/", f"/alerts/teams/{world.team.slug}/"])
        answers.update({f"{person}:{path}": text for path, text in pages.items()})
    # and the API is read by the owner and by a token
    owner_api = APIClient()
    owner_api.force_authenticate(user=world.owner)
    answers.update({f"owner-api:{p}": t for p, t in crawl_api(owner_api).items()})
    token_api = APIClient()
    _, token = ApiToken.issue(team=world.team, name="reader", scopes=["read"])
    token_api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    answers.update({f"token-api:{p}": t for p, t in crawl_api(token_api).items()})
    # then nothing anyone can read carries a stored secret
    assert len(answers) > 150, sorted(answers)  # the crawl really reached the pages
    assert any("/admin/alerts/channel/" in key for key in answers)
    assert any(key.startswith("token-api:/api/v1/alerts/channels/") for key in answers)
    assert any("••••" in text for text in answers.values())  # masks were shown instead
    found = {key: leaks(text, secrets) for key, text in answers.items() if leaks(text, secrets)}
    assert found == {}
    # nor does the audit log, the delivery log, or any log line
    audit = json.dumps(list(Event.objects.values("message", "payload", "subject_label")))
    assert leaks(audit, secrets) == []
    deliveries = json.dumps(
        [
            *Notification.objects.values("last_error"),
            *DeliveryAttempt.objects.values("error"),
        ],
        default=str,
    )
    assert leaks(deliveries, secrets) == []
    assert leaks("\n".join(r.getMessage() for r in caplog.records), secrets) == []
    assert leaks(caplog.text, secrets) == []
