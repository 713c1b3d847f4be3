"""The SSRF guard on notification targets: link-local and cloud-metadata addresses are refused
when a channel is saved and when a notification is sent; loopback receivers stay allowed."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import Client

from alerts import channels
from alerts.choices import ChannelKind, DeliveryState, RuleKind, Severity
from alerts.models import Channel, Notification, Rule
from alerts.tests.conftest import ROUTING_KEY, WEBHOOK_SECRET, deliver_all, service_changed, serving
from controlplane.models import Event
from controlplane.outbound import Destination, refusal

SECRET = WEBHOOK_SECRET


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "fields", "refused_field", "reason"),
    [
        ("webhook", {"url": "http://169.254.169.254/latest/meta-data/"}, "url", "cloud metadata"),
        ("webhook", {"url": "http://[::ffff:169.254.169.254]/"}, "url", "cloud metadata"),
        ("webhook", {"url": "http://[fd00:ec2::254]/latest/"}, "url", "cloud metadata"),
        ("webhook", {"url": "https://169.254.10.20:8443/hook"}, "url", "link-local"),
        (
            "pagerduty",
            {"secret": ROUTING_KEY, "url": "http://metadata.google.internal/computeMetadata/v1/"},
            "url",
            "metadata hostname",
        ),
        ("slack", {"secret": "http://[fe80::1]/services/T/B/x"}, "secret", "link-local"),
    ],
)
def test_the_api_refuses_a_link_local_or_metadata_target_naming_the_field(
    api_as: Any, world: Any, kind: str, fields: dict[str, str], refused_field: str, reason: str
) -> None:
    # when an owner saves a channel that would POST to the cloud's metadata service
    body = {"team": "payments", "name": "sneaky", "kind": kind, **fields}
    if kind == "webhook":
        body["secret"] = SECRET
    answer = api_as("owner").post("/api/v1/alerts/channels", body, format="json")
    # then 400 names the field and says why, and nothing is saved
    assert answer.status_code == 400
    errors = answer.json()["error"]["fields"]
    assert list(errors) == [refused_field]
    assert reason in errors[refused_field][0]
    assert "link-local or cloud-metadata" in errors[refused_field][0]
    assert not Channel.objects.filter(name="sneaky").exists()


@pytest.mark.django_db
def test_changing_a_webhook_to_a_metadata_url_is_refused(api_as: Any, alerting: Any) -> None:
    answer = api_as("owner").patch(
        f"/api/v1/alerts/channels/{alerting.webhook.pk}",
        {"url": "http://100.100.100.200/latest/meta-data/"},
        format="json",
    )
    assert answer.status_code == 400
    assert list(answer.json()["error"]["fields"]) == ["url"]
    alerting.webhook.refresh_from_db()
    assert alerting.webhook.url == alerting.receiver.url("/hook")


@pytest.mark.django_db
def test_loopback_and_private_receivers_stay_allowed(api_as: Any, alerting: Any) -> None:
    # given receivers on loopback (by address and by name) and one on a private network
    assert refusal("http://10.1.2.3:8080/hook") == ""
    created = api_as("owner").post(
        "/api/v1/alerts/channels",
        {
            "team": "payments",
            "name": "local-slack",
            "kind": "slack",
            "secret": f"http://localhost:{alerting.receiver.port}/slack",
        },
        format="json",
    )
    assert created.status_code == 201
    # when its send test runs
    tested = api_as("owner").post(f"/api/v1/alerts/channels/{created.json()['id']}/test")
    # then it arrives (the receiver listens on 127.0.0.1 only, whatever localhost lists first)
    assert tested.json() == {"ok": True, "status_code": 200, "error": ""}
    assert len(alerting.receiver.to("/slack")) == 1


@pytest.mark.django_db
def test_the_dashboard_form_refuses_a_metadata_url(world: Any) -> None:
    client = Client()
    client.force_login(world.owner)
    page = client.post(
        f"/alerts/teams/{world.team.slug}/",
        {
            "what": "channel",
            "channel-name": "sneaky",
            "channel-kind": ChannelKind.WEBHOOK,
            "channel-secret": SECRET,
            "channel-url": "http://169.254.169.254/latest/meta-data/",
        },
    )
    assert page.status_code == 200
    assert "refused: 169.254.169.254 is a cloud metadata address" in page.content.decode()
    assert not Channel.objects.filter(name="sneaky").exists()


def page_rule(world: Any) -> Rule:
    Rule.objects.filter(team=world.team).update(enabled=False)
    return Rule.objects.create(
        team=world.team,
        name="down",
        kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE,
        params={"states": ["down"], "for_seconds": 0},
    )


@pytest.mark.django_db
def test_a_stored_metadata_target_fails_at_send_time_without_a_retry(alerting: Any) -> None:
    # given a webhook saved before the guard existed (written straight to the table)
    Channel.objects.filter(pk=alerting.webhook.pk).update(
        url="http://169.254.169.254/latest/meta-data/iam/"
    )
    alerting.route(alerting.webhook)
    page_rule(alerting.world)
    # when checkout goes down and workers deliver
    service_changed(alerting.world, "down")
    deliver_all()
    # then the notification failed at once, logged with the reason, and the team is told
    notification = Notification.objects.get()
    assert notification.state == DeliveryState.FAILED
    assert notification.attempts == 1
    assert notification.last_error == "refused: 169.254.169.254 is a cloud metadata address"
    failed = Event.objects.get(action="notification.failed")
    assert "cloud metadata" in failed.message


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Answers for names under .rebind.test. Mocked: no DNS server we control runs here, and
    the attack needs a name whose answer changes. Every other name resolves for real."""
    answers: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in answers:
            return real(answers[host], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield answers


@pytest.mark.django_db
def test_a_name_that_rebinds_to_metadata_after_it_was_saved_is_refused(
    api_as: Any, alerting: Any, dns: dict[str, str]
) -> None:
    # given a webhook whose name resolves to the loopback receiver when saved
    dns["hooks.rebind.test"] = "127.0.0.1"
    url = f"http://hooks.rebind.test:{alerting.receiver.port}/hook"
    created = api_as("owner").post(
        "/api/v1/alerts/channels",
        {"team": "payments", "name": "rebinding", "kind": "webhook", "url": url, "secret": SECRET},
        format="json",
    )
    assert created.status_code == 201
    channel = Channel.objects.get(pk=created.json()["id"])
    # then a send connects to the checked address and still names the host it was given
    assert channels.send_test(channel).ok
    assert alerting.receiver.to("/hook")[0].headers["Host"] == (
        f"hooks.rebind.test:{alerting.receiver.port}"
    )
    # when the name later answers with the metadata address
    dns["hooks.rebind.test"] = "169.254.169.254"
    result = channels.send_test(channel)
    # then nothing is sent, and trying again would not help
    assert (result.ok, result.retryable) == (False, False)
    assert result.error == "refused: 169.254.169.254 is a cloud metadata address"
    assert len(alerting.receiver.to("/hook")) == 1


def localhost_certificate(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for the name `localhost` (not for 127.0.0.1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "localhost.pem", tmp_path / "localhost.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, context


@pytest.mark.django_db
def test_https_to_a_name_verifies_the_certificate_of_that_name(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an HTTPS receiver on 127.0.0.1 whose certificate is for "localhost", trusted here
    cert_path, context = localhost_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    with serving(context) as tls:
        channel = Channel.objects.create(
            team=world.team,
            name="tls",
            kind=ChannelKind.WEBHOOK,
            secret=SECRET,
            url=f"https://localhost:{tls.port}/hook",
        )
        # when a test is sent to the name (connecting to the address the guard checked)
        result = channels.send_test(channel)
        # then TLS verified the certificate against the name, and Host carries it
        assert result.ok, result.error
        assert tls.to("/hook")[0].headers["Host"] == f"localhost:{tls.port}"


def test_a_request_goes_to_the_checked_address_under_the_original_name() -> None:
    # given an address in the URL: nothing to pin
    literal = Destination.of("https://user:pw@127.0.0.1:8443/a?b=1")
    assert literal.request_to("127.0.0.1") == (literal.url, {}, {})
    # given an internationalised name that resolved to ::1
    named = Destination(httpx.URL("https://user:pw@bücher.example:8443/a?b=1"), ["::1"])
    # then the request connects to [::1] and names the host (IDNA-encoded) in Host and SNI
    url, headers, extensions = named.request_to("::1")
    assert str(url) == "https://user:pw@[::1]:8443/a?b=1"
    assert headers == {"Host": "xn--bcher-kva.example:8443"}
    assert extensions == {"sni_hostname": "xn--bcher-kva.example"}
