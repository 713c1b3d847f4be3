"""Apprise channels against real HTTPS receivers on loopback: Microsoft Teams (Workflows) and
Opsgenie payloads as Apprise sends them, the outbox's retry and give-up, the SSRF guard on
connections Apprise makes itself, and the secret kept encrypted and shown redacted."""

from __future__ import annotations

import json
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from alerts.choices import ChannelKind, DeliveryState, IncidentState, RuleKind, Severity
from alerts.incidents import acknowledge, resolve
from alerts.models import Channel, Incident, Notification, Rule
from alerts.notifiers import apprise_urls
from alerts.tests.conftest import Receiver, deliver_all, service_changed, serving
from alerts.tests.test_destinations import localhost_certificate
from controlplane import outbound

pytestmark = pytest.mark.django_db

OPSGENIE_KEY = "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
WORKFLOW = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
SIGNATURE = "Sig0123456789abcdefABCDEF0123456789abcdefXYZ"
ACCEPTED = json.dumps({"result": "Request will be processed", "took": 0.1, "requestId": "r-1"})


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """An HTTPS receiver whose certificate (for "localhost") requests trusts here: Apprise's
    plugins verify certificates, as they would against Microsoft or Atlassian."""
    cert_path, context = localhost_certificate(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_path))
    with serving(context) as recv:
        yield recv


@pytest.fixture
def opsgenie_here(tls: Receiver, monkeypatch: pytest.MonkeyPatch) -> Receiver:
    # Opsgenie's host is fixed in Apprise (api.opsgenie.com, api.eu.opsgenie.com): the one
    # thing that cannot run here. Point the plugin's own table at the local receiver; the
    # request, the guard and the payload are Apprise's and ours, unchanged.
    from apprise.plugins import opsgenie

    monkeypatch.setitem(
        opsgenie.OPSGENIE_API_LOOKUP, "us", f"https://localhost:{tls.port}/v2/alerts"
    )
    return tls


def teams_url(recv: Receiver) -> str:
    return f"workflows://localhost:{recv.port}/{WORKFLOW}/{SIGNATURE}/"


def channel(world: Any, url: str, name: str = "apprise") -> Channel:
    return Channel.objects.create(team=world.team, name=name, kind=ChannelKind.APPRISE, secret=url)


def page(world: Any, target: Channel) -> Rule:
    from alerts.models import Route

    Route.objects.create(
        team=world.team, severity=Severity.PAGE, channel=target, group_wait_seconds=0
    )
    return Rule.objects.create(
        team=world.team,
        name="checkout down",
        kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE,
        params={"states": ["down"], "for_seconds": 0},
    )


def fire(world: Any) -> Incident:
    service_changed(world, "down", reason="3 of 3 instances failing")
    return Incident.objects.get(state=IncidentState.FIRING)


def workflow_path() -> str:
    return f"/workflows/{WORKFLOW}/triggers/manual/paths/invoke"


def test_teams_gets_an_adaptive_card_for_the_trigger_the_ack_and_the_resolve(
    world: Any, tls: Receiver
) -> None:
    # given a Teams (Power Automate workflow) channel routed for pages
    page(world, channel(world, teams_url(tls)))
    # when a page fires and is delivered
    incident = fire(world)
    assert deliver_all() == 1
    [request] = tls.wait_for(workflow_path(), 1)
    # then Teams got Apprise's Adaptive Card message, signed as the workflow expects
    assert request.headers["Content-Type"] == "application/json"
    card = request.json()
    assert card["type"] == "message"
    [attachment] = card["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    content = attachment["content"]
    assert content["type"] == "AdaptiveCard"
    assert content["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    texts = {block.get("id"): block.get("text") for block in content["body"]}
    assert texts["title"] == "FIRING: checkout in production is down"
    assert "3 of 3 instances failing" in texts["body"]
    assert f"https://signalbox.example/alerts/incidents/{incident.pk}/" in texts["body"]
    # when it is acknowledged and resolved
    acknowledge(incident.pk, world.owner)
    resolve(incident.pk, world.owner)
    assert deliver_all() == 2
    ack, res = tls.wait_for(workflow_path(), 3)[1:]
    # then each went as its own card, in order
    assert _title(ack) == "ACKNOWLEDGED: checkout in production is down"
    assert _title(res) == "RESOLVED: checkout in production is down"
    assert Notification.objects.filter(state=DeliveryState.DELIVERED).count() == 3


def _title(request: Any) -> str:
    body = request.json()["attachments"][0]["content"]["body"]
    return str(next(b["text"] for b in body if b.get("id") == "title"))


def test_opsgenie_gets_an_alert_api_v2_alert_with_alias_priority_and_tags(
    world: Any, opsgenie_here: Receiver
) -> None:
    opsgenie_here.respond("/v2/alerts", (202, ACCEPTED, {}))
    page(world, channel(world, f"opsgenie://{OPSGENIE_KEY}"))
    incident = fire(world)
    assert deliver_all() == 1
    [request] = opsgenie_here.wait_for("/v2/alerts", 1)
    # then Opsgenie's Alert API v2 got one alert, keyed to the incident
    assert request.headers["Authorization"] == f"GenieKey {OPSGENIE_KEY}"
    alert = request.json()
    assert alert["message"] == "checkout in production is down"
    assert alert["alias"] == f"signalbox-incident-{incident.pk}"
    assert alert["priority"] == "P1"  # a page
    assert "3 of 3 instances failing" in alert["description"]
    assert set(alert["tags"]) == {
        "team:payments",
        "severity:page",
        "service:checkout",
        "environment:production",
    }
    assert alert["details"]["incident_url"].endswith(f"/alerts/incidents/{incident.pk}/")
    assert alert["entity"] == incident.subject_label
    # when it resolves: Apprise closes only alerts whose request ids it kept in its own
    # process, so nothing is queued for Opsgenie (docs/alerts.md says so)
    resolve(incident.pk, world.owner)
    assert deliver_all() == 0
    assert len(opsgenie_here.to("/v2/alerts")) == 1


def test_a_5xx_from_the_service_is_retried_with_backoff_and_then_delivered_once(
    world: Any, tls: Receiver
) -> None:
    tls.respond(workflow_path(), (503, "busy", {}))
    page(world, channel(world, teams_url(tls)))
    fire(world)
    deliver_all(rounds=1)
    row = Notification.objects.get()
    assert (row.state, row.attempts, row.last_status_code) == (DeliveryState.PENDING, 1, 503)
    assert "HTTP 503" in row.last_error
    assert row.next_attempt_at > row.created_at  # backed off, not hammered
    # when its time comes again, the second try is delivered, and only one card arrived
    Notification.objects.update(next_attempt_at=row.created_at)
    deliver_all()
    row.refresh_from_db()
    assert (row.state, row.attempts) == (DeliveryState.DELIVERED, 2)
    assert len(tls.to(workflow_path())) == 2  # the refused one and the accepted one


def test_a_4xx_from_the_service_gives_up_at_once_and_says_why(world: Any, tls: Receiver) -> None:
    tls.respond(workflow_path(), (401, "signature mismatch", {}))
    page(world, channel(world, teams_url(tls)))
    incident = fire(world)
    deliver_all()
    row = Notification.objects.get()
    assert (row.state, row.attempts, row.last_status_code) == (DeliveryState.FAILED, 1, 401)
    assert "signature mismatch" in row.last_error
    assert incident.timeline.filter(kind="delivery_failed").exists()


def test_a_429_waits_as_long_as_retry_after_says(world: Any, tls: Receiver) -> None:
    tls.respond(workflow_path(), (429, "slow down", {"Retry-After": "120"}))
    page(world, channel(world, teams_url(tls)))
    fire(world)
    deliver_all()
    row = Notification.objects.get()
    assert row.state == DeliveryState.PENDING
    assert (row.next_attempt_at - row.created_at).total_seconds() >= 119


def test_the_guard_refuses_apprise_connections_to_networks_not_allowed(
    world: Any, opsgenie_here: Receiver, settings: Any
) -> None:
    # given Opsgenie's (fixed) host resolving to loopback, which this install does not allow
    settings.SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS = []
    page(world, channel(world, f"opsgenie://{OPSGENIE_KEY}"))
    fire(world)
    deliver_all()
    # then nothing reached it, and the row failed without retrying (it cannot become allowed)
    row = Notification.objects.get()
    assert (row.state, row.attempts) == (DeliveryState.FAILED, 1)
    assert "loopback" in row.last_error
    assert opsgenie_here.to("/v2/alerts") == []


def test_a_name_that_rebinds_to_metadata_is_refused_at_connect(
    world: Any, tls: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a saved Teams URL whose name later resolves to the cloud metadata address
    target = channel(world, f"workflows://teams.example:{tls.port}/{WORKFLOW}/{SIGNATURE}/")
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "teams.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", tls.port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    page(world, target)
    fire(world)
    deliver_all()
    row = Notification.objects.get()
    assert row.state == DeliveryState.FAILED
    assert "metadata" in row.last_error


def test_every_socket_apprise_opens_passes_the_guard_not_only_http(settings: Any) -> None:
    # given SMTP (Apprise's mailto://) to loopback, not allowed here
    settings.SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with outbound.guarded_connections(), pytest.raises(outbound.Refused, match="loopback"):
            smtplib.SMTP("127.0.0.1", port, timeout=2)
        # and outside the guarded block (this process's database, say) nothing changes
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    assert connection.cursor() is not None


def test_a_unix_socket_is_refused_under_the_guard(tmp_path: Path) -> None:
    path = str(tmp_path / "sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        with (
            socket.socket(socket.AF_UNIX) as client,
            outbound.guarded_connections(),
            pytest.raises(outbound.Refused),
        ):
            client.connect(path)


# -- the API ----------------------------------------------------------------------------------


def test_the_api_refuses_a_url_apprise_cannot_parse_naming_the_field(api_as: Any) -> None:
    for url, reason in [
        ("not a url", "Apprise URL"),
        ("nosuchservice://token", "cannot parse"),
        ("opsgenie://", "cannot parse"),
        ("syslog://", "notifies this machine"),
    ]:
        response = api_as("owner").post(
            "/api/v1/alerts/channels",
            {"team": "payments", "name": "x", "kind": "apprise", "secret": url},
            format="json",
        )
        assert response.status_code == 400, url
        assert reason in json.dumps(response.json()), (url, response.json())
        assert "secret" in json.dumps(response.json())
    missing = api_as("owner").post(
        "/api/v1/alerts/channels",
        {"team": "payments", "name": "x", "kind": "apprise"},
        format="json",
    )
    assert missing.status_code == 400
    assert "Apprise URL" in json.dumps(missing.json())


def test_the_api_refuses_a_metadata_host_in_an_apprise_url(api_as: Any) -> None:
    response = api_as("owner").post(
        "/api/v1/alerts/channels",
        {
            "team": "payments",
            "name": "x",
            "kind": "apprise",
            "secret": f"workflows://169.254.169.254/{WORKFLOW}/{SIGNATURE}/",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "metadata" in json.dumps(response.json())


def test_the_url_is_stored_encrypted_and_shown_only_redacted(api_as: Any, world: Any) -> None:
    url = f"opsgenie://{OPSGENIE_KEY}?region=eu"
    created = api_as("owner").post(
        "/api/v1/alerts/channels",
        {"team": "payments", "name": "opsgenie", "kind": "apprise", "secret": url},
        format="json",
    )
    assert created.status_code == 201, created.json()
    shown = api_as("viewer").get(f"/api/v1/alerts/channels/{created.json()['id']}").json()
    text = json.dumps(shown)
    assert OPSGENIE_KEY not in text and "secret" not in {k for k, v in shown.items() if v == url}
    assert shown["secret_masked"].startswith("opsgenie://0...d/")
    assert "region=eu" in shown["secret_masked"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM alerts_channel WHERE id = %s", [shown["id"]])
        stored = cursor.fetchone()[0]
    assert OPSGENIE_KEY not in stored and stored.startswith("gAAAA")  # Fernet
    assert Channel.objects.get(pk=shown["id"]).secret == url
    # and changing its name keeps the URL
    changed = api_as("owner").patch(
        f"/api/v1/alerts/channels/{shown['id']}", {"name": "og"}, format="json"
    )
    assert changed.status_code == 200
    assert Channel.objects.get(pk=shown["id"]).secret == url


def test_send_test_through_apprise_reports_the_answer(
    api_as: Any, world: Any, tls: Receiver
) -> None:
    target = channel(world, teams_url(tls))
    tls.respond(workflow_path(), (400, "bad card", {}))
    response = api_as("owner").post(f"/api/v1/alerts/channels/{target.pk}/test")
    assert response.json()["ok"] is False
    assert response.json()["status_code"] == 400
    response = api_as("owner").post(f"/api/v1/alerts/channels/{target.pk}/test")
    assert response.json() == {"ok": True, "status_code": 200, "error": ""}
    assert "Test notification" in _title(tls.to(workflow_path())[-1])


def test_apprise_problem_names_an_unparsable_url() -> None:
    assert apprise_urls.problem(f"opsgenie://{OPSGENIE_KEY}") == ""
    assert "cannot parse" in apprise_urls.problem("tgram://")


def test_the_admin_takes_an_apprise_url_checks_it_and_never_shows_it(world: Any) -> None:
    from django.test import Client

    client = Client()
    client.force_login(world.admin)
    form = {
        "team": world.team.pk,
        "name": "teams",
        "kind": "apprise",
        "url": "",
        "config": "{}",
        "enabled": "on",
    }
    refused = client.post("/admin/alerts/channel/add/", {**form, "new_secret": "tgram://"})
    assert refused.status_code == 200  # the form again, with the reason
    assert "Apprise cannot parse" in refused.content.decode()
    assert not Channel.objects.filter(name="teams").exists()
    url = f"workflows://teams.example/{WORKFLOW}/{SIGNATURE}/"
    saved = client.post("/admin/alerts/channel/add/", {**form, "new_secret": url})
    assert saved.status_code == 302
    stored = Channel.objects.get(name="teams")
    assert stored.secret == url
    page = client.get(f"/admin/alerts/channel/{stored.pk}/change/").content.decode()
    assert SIGNATURE not in page and WORKFLOW not in page
    assert "workflow://teams.example/" in page  # as Apprise redacts it
    # saving again without typing the secret keeps it
    kept = client.post(f"/admin/alerts/channel/{stored.pk}/change/", {**form, "name": "msteams"})
    assert kept.status_code == 302
    stored.refresh_from_db()
    assert (stored.name, stored.secret) == ("msteams", url)


def test_a_service_that_does_not_answer_is_retried_and_the_error_keeps_the_url_out(
    world: Any,
) -> None:
    # given a Teams workflow on a port where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    page(world, channel(world, f"workflows://localhost:{port}/{WORKFLOW}/{SIGNATURE}/"))
    fire(world)
    deliver_all(rounds=1)
    row = Notification.objects.get()
    # then it waits for another try, saying what failed but not the signed URL
    assert (row.state, row.attempts) == (DeliveryState.PENDING, 1)
    assert "ConnectionRefusedError" in row.last_error
    assert "localhost" in row.last_error
    assert SIGNATURE not in row.last_error and WORKFLOW not in row.last_error


def test_changing_the_url_to_one_apprise_cannot_parse_is_refused(api_as: Any, world: Any) -> None:
    target = channel(world, f"opsgenie://{OPSGENIE_KEY}")
    answer = api_as("owner").patch(
        f"/api/v1/alerts/channels/{target.pk}", {"secret": "opsgenie://"}, format="json"
    )
    assert answer.status_code == 400
    assert "secret" in json.dumps(answer.json())
    target.refresh_from_db()
    assert target.secret == f"opsgenie://{OPSGENIE_KEY}"
