"""The team page's settings: members and invitations, API tokens, channels and routes.

Real parts: PostgreSQL, the SMTP receiver (aiosmtpd on loopback) and the HTTP receiver the
alert tests use, standing in for the mailbox and the webhook endpoint."""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.choices import AlertChannelEvent, AlertRouteEvent, ChannelKind, NotificationAction
from alerts.models import Channel, DeliveryAttempt, Notification, Route
from alerts.tests.conftest import Mailbox, Receiver
from catalog.choices import InvitationEvent, MembershipEvent, Role, TokenEvent
from catalog.models import ApiToken, Invitation, Membership
from controlplane.models import Event

pytestmark = pytest.mark.django_db
TEAM = "/catalog/teams/payments/"


def as_(user: Any) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def events(action: str) -> list[Event]:
    return list(Event.objects.filter(action=action).order_by("id"))


def error_of(html: str, field_id: str) -> str:
    """The reason shown next to the field with this id (aria-describedby's target)."""
    found = re.search(rf'id="{re.escape(field_id)}_error"[^>]*>([^<]*)<', html)
    assert found, f"no error shown next to {field_id}"
    return html_lib.unescape(found.group(1))


# -- who sees and may do what ---------------------------------------------------------------


def endpoints(world: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every form of the team page, with a valid body."""
    member = Membership.objects.get(user=world.viewer, team=world.team)
    channel = Channel.objects.create(
        team=world.team, name="ops", kind=ChannelKind.EMAIL, config={"to": ["ops@example.com"]}
    )
    route = Route.objects.create(team=world.team, severity="page", channel=channel)
    token, _ = ApiToken.issue(team=world.team, name="ci", scopes=["read"])
    invitation = Invitation.objects.create(
        team=world.team, email="x@example.com", token_hash="h" * 64,
        expires_at=timezone.now() + timedelta(days=1),
    )  # fmt: skip
    return [
        (f"{TEAM}invite", {"invite-email": "new@example.com", "invite-role": "viewer"}),
        (f"{TEAM}invitations/{invitation.pk}/cancel", {}),
        (f"{TEAM}members/{member.pk}/role", {f"m{member.pk}-role": "deployer"}),
        (f"{TEAM}members/{member.pk}/remove", {}),
        (f"{TEAM}tokens/new", {"token-name": "deploys", "token-scopes": ["deploy"]}),
        (f"{TEAM}tokens/{token.pk}/revoke", {}),
        (f"{TEAM}channels/new", {"channel-name": "m", "channel-kind": "email",
                                 "channel-to": "a@example.com", "channel-enabled": "on"}),
        (f"{TEAM}channels/{channel.pk}/edit", {f"c{channel.pk}-name": "ops2",
                                                f"c{channel.pk}-to": "ops@example.com"}),
        (f"{TEAM}routes/new", {"route-severity": "ticket", "route-channel": str(channel.pk),
                               "route-escalation_level": "0", "route-group_wait_seconds": "5"}),
        (f"{TEAM}routes/{route.pk}/edit", {f"r{route.pk}-severity": "page",
                                            f"r{route.pk}-channel": str(channel.pk),
                                            f"r{route.pk}-escalation_level": "1",
                                            f"r{route.pk}-group_wait_seconds": "5"}),
        (f"{TEAM}channels/{channel.pk}/test", {}),
        (f"{TEAM}routes/{route.pk}/delete", {}),
        (f"{TEAM}channels/{channel.pk}/delete", {}),
    ]  # fmt: skip


@pytest.mark.parametrize("persona", ["viewer", "deployer", "outsider"])
def test_people_who_are_not_owners_get_403_and_nothing_changes(
    world: Any, persona: str, smtp: Mailbox
) -> None:
    client = as_(getattr(world, persona))
    before = Event.objects.count()
    for path, body in endpoints(world):
        assert client.post(path, body).status_code == 403, path
    assert Event.objects.count() == before
    assert Membership.objects.get(user=world.viewer).role == Role.VIEWER
    assert smtp.messages == []


def test_anonymous_posts_are_sent_to_log_in(world: Any) -> None:
    for path, body in endpoints(world):
        answer = Client().post(path, body)
        assert answer.status_code == 302 and answer["Location"].startswith("/login/"), path


@pytest.mark.parametrize("persona", ["owner", "admin"])
def test_owners_and_platform_admins_may_use_every_form(
    world: Any, persona: str, smtp: Mailbox
) -> None:
    client = as_(getattr(world, persona))
    for path, body in endpoints(world):
        status = client.post(path, body).status_code
        assert status in (201, 302), f"{path}: {status}"


def test_a_viewer_sees_members_and_channels_but_no_controls_and_no_tokens(world: Any) -> None:
    ApiToken.issue(team=world.team, name="ci-secret-name", scopes=["read"])
    Channel.objects.create(team=world.team, name="pager", kind=ChannelKind.PAGERDUTY,
                           secret="R0123456789abcdef0123456789ABCDE")  # fmt: skip
    html = as_(world.viewer).get(TEAM).content.decode()
    assert "deployer" in html and "pager" in html
    assert "ci-secret-name" not in html
    assert "<form" not in html.split('id="team-members"')[1].split('id="team-events-title"')[0]
    assert "Invite someone" not in html and "Create a token" not in html
    assert "R0123456789abcdef0123456789ABCDE" not in html


def test_forms_need_the_csrf_token(world: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    answer = client.post(f"{TEAM}tokens/new", {"token-name": "x", "token-scopes": ["read"]})
    assert answer.status_code == 403
    assert not ApiToken.objects.filter(name="x").exists()


# -- members and invitations ----------------------------------------------------------------


def test_an_invitation_is_emailed_and_accepting_it_creates_the_account_and_membership(
    world: Any, smtp: Mailbox, settings: Any
) -> None:
    settings.SIGNALBOX_BASE_URL = "https://signalbox.example"
    answer = as_(world.owner).post(
        f"{TEAM}invite", {"invite-email": "Newcomer@Example.com", "invite-role": "deployer"}
    )
    assert answer.status_code == 302
    # the email arrived through SMTP with an unguessable link; only its hash is stored
    [envelope] = smtp.messages
    assert envelope.rcpt_tos == ["newcomer@example.com"]
    text = envelope.content.decode()
    assert "Join Payments on Signalbox" in text and "as deployer" in text
    link = re.search(r"https://signalbox\.example(/invitations/[A-Za-z0-9_-]{40,}/)", text)
    assert link
    path = link.group(1)
    invitation = Invitation.objects.get()
    assert path.split("/")[2] not in invitation.token_hash
    assert invitation.token_hash == Invitation.hash_token(path.split("/")[2])
    [sent] = events(InvitationEvent.SENT)
    assert sent.actor_label == "owner" and sent.team == world.team
    # the owner sees it pending on the team page
    assert "newcomer@example.com" in as_(world.owner).get(TEAM).content.decode()
    # when the invited person opens the link and creates an account
    stranger = Client()
    page = stranger.get(path)
    assert page.status_code == 200 and "Create your account" in page.content.decode()
    password = "a long Passphrase 1"
    joined = stranger.post(
        path, {"username": "newcomer", "password1": password, "password2": password}
    )
    assert joined.status_code == 302 and joined["Location"] == TEAM
    user = get_user_model().objects.get(username="newcomer")
    assert user.email == "newcomer@example.com"
    assert Membership.objects.get(user=user, team=world.team).role == Role.DEPLOYER
    [created] = events(MembershipEvent.CREATED)
    assert created.actor_label == "newcomer" and created.payload["fields"]["role"] == "deployer"
    # and they are signed in; the link does not work twice
    assert stranger.get(TEAM).status_code == 200
    assert Client().get(path).status_code == 404


def test_a_signed_in_person_accepts_with_their_account(world: Any, smtp: Mailbox) -> None:
    as_(world.owner).post(
        f"{TEAM}invite", {"invite-email": "o@example.com", "invite-role": "viewer"}
    )
    path = re.search(r"(/invitations/[^/\s]+/)", smtp.messages[0].content.decode()).group(1)  # type: ignore[union-attr]
    # the other team's owner joins with the account they have
    client = as_(world.outsider)
    assert "Join payments as outsider" in client.get(path).content.decode()
    assert client.post(path).status_code == 302
    assert Membership.objects.get(user=world.outsider, team=world.team).role == Role.VIEWER


def test_an_expired_or_cancelled_invitation_does_not_work(world: Any, smtp: Mailbox) -> None:
    as_(world.owner).post(
        f"{TEAM}invite", {"invite-email": "late@example.com", "invite-role": "owner"}
    )
    path = re.search(r"(/invitations/[^/\s]+/)", smtp.messages[0].content.decode()).group(1)  # type: ignore[union-attr]
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    answer = Client().post(path, {"username": "late", "password1": "x" * 20, "password2": "x" * 20})
    assert answer.status_code == 404
    assert not get_user_model().objects.filter(username="late").exists()
    # an expired invitation makes room for a new one to the same address
    assert (
        as_(world.owner)
        .post(f"{TEAM}invite", {"invite-email": "late@example.com", "invite-role": "owner"})
        .status_code
        == 302
    )
    invitation = Invitation.objects.pending().get()
    as_(world.owner).post(f"{TEAM}invitations/{invitation.pk}/cancel")
    new_path = re.search(r"(/invitations/[^/\s]+/)", smtp.messages[1].content.decode()).group(1)  # type: ignore[union-attr]
    assert Client().get(new_path).status_code == 404
    assert len(events(InvitationEvent.CANCELLED)) == 1


def test_bad_invitations_say_what_to_fix_next_to_the_email(world: Any, smtp: Mailbox) -> None:
    world.viewer.email = "viewer@example.com"
    world.viewer.save()
    client = as_(world.owner)
    bad = client.post(f"{TEAM}invite", {"invite-email": "not-an-email", "invite-role": "viewer"})
    assert bad.status_code == 400
    assert "valid email" in error_of(bad.content.decode(), "id_invite-email")
    member = client.post(
        f"{TEAM}invite", {"invite-email": "VIEWER@example.com", "invite-role": "owner"}
    )
    assert member.status_code == 409
    assert "already a member of payments (as viewer)" in error_of(
        member.content.decode(), "id_invite-email"
    )
    client.post(f"{TEAM}invite", {"invite-email": "twice@example.com", "invite-role": "viewer"})
    again = client.post(
        f"{TEAM}invite", {"invite-email": "twice@example.com", "invite-role": "viewer"}
    )
    assert again.status_code == 409
    assert "cancel it to send a new one" in error_of(again.content.decode(), "id_invite-email")
    assert len(smtp.messages) == 1 and Invitation.objects.count() == 1


def test_when_the_email_cannot_be_sent_nothing_is_saved(world: Any, settings: Any) -> None:
    from alerts.tests.conftest import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    answer = as_(world.owner).post(
        f"{TEAM}invite", {"invite-email": "a@example.com", "invite-role": "viewer"}
    )
    assert answer.status_code == 502
    assert "could not be sent" in answer.content.decode()
    assert not Invitation.objects.exists() and not events(InvitationEvent.SENT)


def test_owners_change_roles_and_remove_members_as_audited_events(world: Any) -> None:
    member = Membership.objects.get(user=world.viewer)
    client = as_(world.owner)
    assert (
        client.post(
            f"{TEAM}members/{member.pk}/role", {f"m{member.pk}-role": "deployer"}
        ).status_code
        == 302
    )
    member.refresh_from_db()
    assert member.role == Role.DEPLOYER
    [changed] = events(MembershipEvent.UPDATED)
    assert changed.payload == {"changes": {"role": ["viewer", "deployer"]}}
    assert client.post(f"{TEAM}members/{member.pk}/remove").status_code == 302
    assert not Membership.objects.filter(pk=member.pk).exists()
    assert len(events(MembershipEvent.DELETED)) == 1


def test_the_last_owner_can_be_neither_demoted_nor_removed(world: Any) -> None:
    owner = Membership.objects.get(user=world.owner)
    client = as_(world.owner)
    demoted = client.post(f"{TEAM}members/{owner.pk}/role", {f"m{owner.pk}-role": "viewer"})
    assert demoted.status_code == 409
    reason = error_of(demoted.content.decode(), f"id_m{owner.pk}-role")
    assert "owner is the last owner of payments; make someone else owner first" in reason
    removed = client.post(f"{TEAM}members/{owner.pk}/remove")
    assert removed.status_code == 409
    assert "Not removed: owner is the last owner" in error_of(
        removed.content.decode(), f"id_m{owner.pk}-role"
    )
    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    assert not events(MembershipEvent.UPDATED) and not events(MembershipEvent.DELETED)


def test_a_bad_role_is_refused_next_to_it(world: Any) -> None:
    member = Membership.objects.get(user=world.viewer)
    answer = as_(world.owner).post(f"{TEAM}members/{member.pk}/role", {f"m{member.pk}-role": "god"})
    assert answer.status_code == 400
    assert "Select a valid choice" in error_of(answer.content.decode(), f"id_m{member.pk}-role")


# -- tokens ---------------------------------------------------------------------------------


def test_a_token_is_shown_once_works_and_is_revoked(world: Any) -> None:
    client = as_(world.owner)
    answer = client.post(
        f"{TEAM}tokens/new",
        {"token-name": "checkout-prod", "token-scopes": ["report", "read"],
         "token-service": "checkout", "token-expires_in_days": "30"},
    )  # fmt: skip
    assert answer.status_code == 201 and answer["Cache-Control"] == "no-store"
    html = answer.content.decode()
    plain = re.search(r'value="(sbx_[0-9a-f]{12}_[A-Za-z0-9_-]+)"', html).group(1)  # type: ignore[union-attr]
    assert "only time it is shown" in html
    token = ApiToken.objects.get(name="checkout-prod")
    assert token.key_hash == ApiToken.hash_secret(plain) and plain not in token.key_hash
    assert token.scopes == ["read", "report"] and token.service == world.service
    assert token.expires_at is not None and token.expires_at > timezone.now() + timedelta(days=29)
    [issued] = events(TokenEvent.ISSUED)
    assert issued.actor_label == "owner" and issued.payload == {"scopes": ["read", "report"]}
    # the value works against the API, and the page lists it with its last use, never its value
    assert Client().get("/api/v1/services", HTTP_AUTHORIZATION=f"Bearer {plain}").status_code == 200
    page = client.get(TEAM).content.decode()
    assert plain not in page and "checkout-prod" in page
    row = page.split(f'id="team-token-{token.pk}"')[1].split("</tr>")[0]
    assert "ago" in row and f"sbx_{token.key_id}_" in row
    # revoked: it stops working, and revoking is one event
    assert client.post(f"{TEAM}tokens/{token.pk}/revoke").status_code == 302
    assert Client().get("/api/v1/services", HTTP_AUTHORIZATION=f"Bearer {plain}").status_code == 401
    client.post(f"{TEAM}tokens/{token.pk}/revoke")
    assert len(events(TokenEvent.REVOKED)) == 1


def test_bad_tokens_say_what_to_fix_next_to_the_field(world: Any) -> None:
    client = as_(world.owner)
    none = client.post(f"{TEAM}tokens/new", {"token-name": "ci"})
    assert none.status_code == 400
    assert "tick at least one scope" in error_of(none.content.decode(), "id_token-scopes")
    other = client.post(
        f"{TEAM}tokens/new",
        {"token-name": "ci", "token-scopes": ["read"], "token-service": "indexer"},
    )
    assert other.status_code == 400  # not one of the team's services
    assert "Select a valid choice" in error_of(other.content.decode(), "id_token-service")
    client.post(f"{TEAM}tokens/new", {"token-name": "ci", "token-scopes": ["read"]})
    twice = client.post(f"{TEAM}tokens/new", {"token-name": "ci", "token-scopes": ["deploy"]})
    assert twice.status_code == 409
    assert "already has an active token named 'ci'" in error_of(
        twice.content.decode(), "id_token-name"
    )
    assert ApiToken.objects.count() == 1 and len(events(TokenEvent.ISSUED)) == 1


# -- channels and routes --------------------------------------------------------------------


def test_an_owner_adds_a_webhook_channel_sends_a_test_and_edits_it(
    world: Any, receiver: Receiver
) -> None:
    client = as_(world.owner)
    created = client.post(
        f"{TEAM}channels/new",
        {"channel-name": "hooks", "channel-kind": "webhook", "channel-url": receiver.url("/hook"),
         "channel-secret": "a-signing-secret-of-32-characters", "channel-enabled": "on"},
    )  # fmt: skip
    assert created.status_code == 302
    channel = Channel.objects.get(name="hooks")
    [event] = events(AlertChannelEvent.CREATED)
    assert event.actor_label == "owner" and "a-signing-secret" not in str(event.payload)
    page = client.get(TEAM).content.decode()
    assert "a-signing-secret-of-32-characters" not in page and receiver.url("/hook") in page
    # send a test: a real POST to the receiver, recorded in the outbox, and the outcome shown
    tested = client.post(f"{TEAM}channels/{channel.pk}/test", follow=True)
    [request] = receiver.wait_for("/hook", 1)
    assert request.json()["action"] == "test"
    assert "Test sent to &#x27;hooks&#x27; (HTTP 200)" in tested.content.decode()
    notification = Notification.objects.get(channel=channel)
    assert notification.action == NotificationAction.TEST and notification.state == "delivered"
    assert DeliveryAttempt.objects.get(notification=notification).status_code == 200
    receiver.respond("/hook", (500, "boom", {}))
    failed = client.post(f"{TEAM}channels/{channel.pk}/test", follow=True).content.decode()
    assert "Test to &#x27;hooks&#x27; failed: HTTP 500" in failed
    # edit: the name changes, the stored secret stays when left empty
    edited = client.post(
        f"{TEAM}channels/{channel.pk}/edit",
        {f"c{channel.pk}-name": "hooks-2", f"c{channel.pk}-url": receiver.url("/hook"),
         f"c{channel.pk}-secret": "", f"c{channel.pk}-enabled": "on"},
    )  # fmt: skip
    assert edited.status_code == 302
    channel.refresh_from_db()
    assert channel.name == "hooks-2" and channel.secret == "a-signing-secret-of-32-characters"
    [updated] = events(AlertChannelEvent.UPDATED)
    assert updated.payload["changes"]["name"] == ["hooks", "hooks-2"]


def test_an_email_channel_test_arrives_by_smtp(world: Any, smtp: Mailbox) -> None:
    client = as_(world.owner)
    client.post(
        f"{TEAM}channels/new",
        {
            "channel-name": "mail",
            "channel-kind": "email",
            "channel-to": "oncall@example.com, lead@example.com",
        },
    )
    channel = Channel.objects.get(name="mail")
    assert channel.config == {"to": ["oncall@example.com", "lead@example.com"]}
    client.post(f"{TEAM}channels/{channel.pk}/test")
    [envelope] = smtp.messages
    assert sorted(envelope.rcpt_tos) == ["lead@example.com", "oncall@example.com"]
    assert "This is a test from Signalbox to the channel mail" in envelope.content.decode()


def test_bad_channels_are_refused_with_the_apis_reasons_next_to_the_field(world: Any) -> None:
    client = as_(world.owner)
    no_url = client.post(f"{TEAM}channels/new", {"channel-name": "h", "channel-kind": "webhook"})
    assert no_url.status_code == 400
    assert error_of(no_url.content.decode(), "id_channel-url") == "give the URL to POST to"
    metadata = client.post(
        f"{TEAM}channels/new",
        {"channel-name": "h", "channel-kind": "webhook", "channel-url": "http://169.254.169.254/x"},
    )
    assert "never go to link-local or cloud-metadata" in error_of(
        metadata.content.decode(), "id_channel-url"
    )
    mail = client.post(
        f"{TEAM}channels/new",
        {"channel-name": "m", "channel-kind": "email", "channel-to": "nobody"},
    )
    assert "one or more email addresses" in error_of(mail.content.decode(), "id_channel-to")
    Channel.objects.create(
        team=world.team, name="taken", kind=ChannelKind.EMAIL, config={"to": ["a@b.co"]}
    )
    taken = client.post(
        f"{TEAM}channels/new",
        {"channel-name": "taken", "channel-kind": "email", "channel-to": "a@b.co"},
    )
    assert taken.status_code == 409
    assert "already has a channel named 'taken'" in error_of(
        taken.content.decode(), "id_channel-name"
    )
    assert Channel.objects.count() == 1 and not events(AlertChannelEvent.CREATED)


def test_the_channel_form_offers_every_kind_the_model_declares(
    world: Any, monkeypatch: Any
) -> None:
    field = Channel._meta.get_field("kind")
    kinds = [*(field.choices or []), ("carrier-pigeon", "Carrier pigeon")]
    monkeypatch.setattr(field, "choices", kinds)
    html = as_(world.owner).get(TEAM).content.decode()
    form = html.split('id="team-channel-new"')[1]
    for value, label in kinds:
        assert f'<option value="{value}"' in form and label in form


def test_owners_add_edit_and_delete_routes(world: Any) -> None:
    channel = Channel.objects.create(
        team=world.team, name="ops", kind=ChannelKind.EMAIL, config={"to": ["a@b.co"]}
    )
    client = as_(world.owner)
    body = {
        "route-severity": "page",
        "route-channel": str(channel.pk),
        "route-escalation_level": "0",
        "route-group_wait_seconds": "30",
        "route-enabled": "on",
    }
    assert client.post(f"{TEAM}routes/new", body).status_code == 302
    route = Route.objects.get()
    assert (route.severity, route.group_wait_seconds, route.enabled) == ("page", 30, True)
    assert len(events(AlertRouteEvent.CREATED)) == 1
    twice = client.post(f"{TEAM}routes/new", body)
    assert twice.status_code == 409
    assert "already routes that severity" in error_of(twice.content.decode(), "id_route-channel")
    bad = client.post(f"{TEAM}routes/new", {**body, "route-escalation_level": "12"})
    assert bad.status_code == 400
    assert "less than or equal to 9" in error_of(bad.content.decode(), "id_route-escalation_level")
    edit = {
        f"r{route.pk}-severity": "page",
        f"r{route.pk}-channel": str(channel.pk),
        f"r{route.pk}-escalation_level": "1",
        f"r{route.pk}-group_wait_seconds": "30",
    }
    assert client.post(f"{TEAM}routes/{route.pk}/edit", edit).status_code == 302
    route.refresh_from_db()
    assert route.escalation_level == 1 and route.enabled is False
    [updated] = events(AlertRouteEvent.UPDATED)
    assert updated.payload["changes"]["escalation_level"] == [0, 1]
    assert client.post(f"{TEAM}routes/{route.pk}/delete").status_code == 302
    assert not Route.objects.exists() and len(events(AlertRouteEvent.DELETED)) == 1


def test_another_teams_channel_cannot_be_routed_or_touched(world: Any) -> None:
    theirs = Channel.objects.create(
        team=world.other_team, name="x", kind=ChannelKind.EMAIL, config={"to": ["a@b.co"]}
    )
    client = as_(world.owner)
    answer = client.post(
        f"{TEAM}routes/new",
        {
            "route-severity": "page",
            "route-channel": str(theirs.pk),
            "route-escalation_level": "0",
            "route-group_wait_seconds": "1",
        },
    )
    assert answer.status_code == 400 and not Route.objects.exists()
    assert client.post(f"{TEAM}channels/{theirs.pk}/test").status_code == 404
    assert client.post(f"{TEAM}channels/{theirs.pk}/delete").status_code == 404


# -- queries --------------------------------------------------------------------------------


def test_the_owners_page_runs_as_many_queries_for_10_as_for_200_members_and_tokens(
    world: Any,
) -> None:
    users = get_user_model().objects

    def grow(n: int) -> None:
        start = Membership.objects.filter(team=world.team).count()
        made = users.bulk_create(
            [
                users.model(username=f"u{start + i}", email=f"u{start + i}@example.com")
                for i in range(n)
            ]
        )
        Membership.objects.bulk_create([Membership(user=u, team=world.team) for u in made])
        for i in range(n // 5):
            ApiToken.issue(
                team=world.team, name=f"t{start}-{i}", scopes=["read"], created_by=world.owner
            )
        channels = Channel.objects.bulk_create(
            [
                Channel(
                    team=world.team,
                    name=f"c{start}-{i}",
                    kind=ChannelKind.EMAIL,
                    config={"to": ["a@b.co"]},
                )
                for i in range(n // 10)
            ]
        )
        Route.objects.bulk_create(
            [Route(team=world.team, severity="page", channel=c) for c in channels]
        )

    def count() -> int:
        client = as_(world.owner)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(TEAM).status_code == 200
        return len(queries)

    grow(10)
    small = count()
    grow(190)
    assert count() == small


def test_an_owner_adds_an_opsgenie_channel_with_its_region_and_sends_a_test(
    world: Any, receiver: Receiver
) -> None:
    client = as_(world.owner)
    key = "1b2c3d4e-0000-4000-8000-00000000abcd"
    # when the owner picks Opsgenie, the EU region, and a receiver standing in for the API
    created = client.post(
        f"{TEAM}channels/new",
        {"channel-name": "genie", "channel-kind": "opsgenie", "channel-secret": key,
         "channel-region": "eu", "channel-url": receiver.url("/og"), "channel-enabled": "on"},
    )  # fmt: skip
    assert created.status_code == 302
    channel = Channel.objects.get(name="genie")
    assert channel.config == {"region": "eu"} and channel.secret == key
    # then the edit form shows the region, and "send a test" creates and closes an alert
    page = client.get(TEAM).content.decode()
    assert key not in page
    edit_form = page.split(f'name="c{channel.pk}-region"')[1].split("</select>")[0]
    assert '<option value="eu" selected>' in edit_form
    tested = client.post(f"{TEAM}channels/{channel.pk}/test", follow=True)
    assert "Test sent to &#x27;genie&#x27; (HTTP 200)" in tested.content.decode()
    [opened] = receiver.wait_for("/og/v2/alerts", 1)
    assert opened.headers["Authorization"] == f"GenieKey {key}"
    assert opened.json()["priority"] == "P5"
    [closed] = receiver.wait_for(f"/og/v2/alerts/signalbox-test-{channel.pk}/close", 1)
    assert closed.query == "identifierType=alias"
    # and a bad key is refused next to the field, nothing saved
    refused = client.post(
        f"{TEAM}channels/new",
        {"channel-name": "bad", "channel-kind": "opsgenie", "channel-secret": "nope"},
    )
    assert refused.status_code == 400
    assert "an Opsgenie API key looks like" in error_of(
        refused.content.decode(), "id_channel-secret"
    )
    assert not Channel.objects.filter(name="bad").exists()
