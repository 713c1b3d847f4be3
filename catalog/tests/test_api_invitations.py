"""The invitations API: owners (or a team's `write` token) invite by email, list and revoke,
as the team page does, each change one event and the link mailed through a real SMTP
server (aiosmtpd on loopback, the alert tests' receiver)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from alerts.tests.conftest import Mailbox, free_port
from catalog.choices import InvitationEvent, Role
from catalog.models import Invitation, Membership
from controlplane.models import Event

pytestmark = pytest.mark.django_db
URL = "/api/v1/invitations"


def invite(client: Any, **body: Any) -> Any:
    return client.post(URL, {"team": "payments", "email": "new@example.com", **body}, format="json")


def test_an_owner_invites_and_the_link_is_mailed_and_works(
    api_as: Any, smtp: Mailbox, settings: Any
) -> None:
    settings.SIGNALBOX_BASE_URL = "https://signalbox.example"
    # when an owner invites an address as deployer
    created = invite(api_as("owner"), email="Newcomer@Example.com", role="deployer")
    # then the answer shows it pending, the email carries the link, one event says so
    assert created.status_code == 201, created.json()
    body = created.json()
    assert {k: body[k] for k in ("team", "email", "role", "state", "invited_by")} == {
        "team": "payments", "email": "newcomer@example.com", "role": "deployer",
        "state": "pending", "invited_by": "owner",
    }  # fmt: skip
    assert "token" not in str(body).lower().replace("token_hash", "")
    [envelope] = smtp.messages
    assert envelope.rcpt_tos == ["newcomer@example.com"]
    text = envelope.content.decode()
    assert "Join Payments on Signalbox" in text and "owner invites you" in text
    path = re.search(r"https://signalbox\.example(/invitations/[A-Za-z0-9_-]{40,}/)", text)
    assert path
    [sent] = Event.objects.filter(action=InvitationEvent.SENT)
    assert sent.actor_label == "owner" and sent.payload["role"] == "deployer"
    # and the link makes the account and the membership, as from the team page
    password = "a long Passphrase 1"
    joined = Client().post(
        path.group(1), {"username": "newcomer", "password1": password, "password2": password}
    )
    assert joined.status_code == 302
    user = get_user_model().objects.get(username="newcomer")
    assert Membership.objects.get(user=user).role == Role.DEPLOYER
    listed = api_as("owner").get(URL, {"team": "payments"}).json()["results"]
    assert [(i["email"], i["state"]) for i in listed] == [("newcomer@example.com", "accepted")]


def test_bad_invitations_are_400_naming_the_field(api_as: Any, smtp: Mailbox) -> None:
    owner = api_as("owner")
    for body, field, reason in [
        ({"email": "not-an-address"}, "email", "valid email"),
        ({"role": "emperor"}, "role", "not a valid choice"),
        ({"team": "nope"}, "team", "no team 'nope'"),
        ({"colour": "red"}, "colour", ""),
    ]:
        answer = invite(owner, **body)
        assert answer.status_code == 400, body
        fields = answer.json()["error"]["fields"]
        assert field in fields and reason in str(fields[field]), fields
    # a pending invitation of the same address, or a member, is refused on `email`
    assert invite(owner).status_code == 201
    again = invite(owner, email="NEW@example.com")
    assert again.status_code == 400
    assert "already has an invitation" in str(again.json()["error"]["fields"]["email"])
    get_user_model().objects.filter(username="viewer").update(email="viewer@example.com")
    member = invite(owner, email="viewer@example.com")
    assert member.status_code == 400
    assert "already a member of payments" in str(member.json()["error"]["fields"]["email"])
    # nothing else was saved or mailed
    assert Invitation.objects.count() == 1 and len(smtp.messages) == 1
    assert Event.objects.filter(action=InvitationEvent.SENT).count() == 1


@pytest.mark.parametrize("persona", ["deployer", "viewer", "outsider", "anonymous"])
def test_only_the_team_s_owners_invite_and_see_invitations(
    api_as: Any, smtp: Mailbox, persona: str
) -> None:
    invite(api_as("owner"), email="seen@example.com")
    # when anyone else tries
    answer = invite(api_as(persona))
    # then they are refused and see no addresses
    assert answer.status_code in (401, 403)
    listed = api_as(persona).get(URL)
    assert listed.status_code in (401, 403) or listed.json()["results"] == []
    assert Invitation.objects.count() == 1 and len(smtp.messages) == 1


def test_tokens_need_write_on_the_team(world: Any, token_client: Any, smtp: Mailbox) -> None:
    reader, _ = token_client(world.team, ["read"])
    assert invite(reader).status_code == 403
    other, _ = token_client(world.other_team, ["write"])
    assert invite(other).status_code == 403
    writer, token = token_client(world.team, ["write"])
    assert invite(writer).status_code == 201
    [sent] = Event.objects.filter(action=InvitationEvent.SENT)
    assert sent.actor_token == token and token.name in sent.actor_label


def test_revoking_stops_the_link_once_and_is_one_event(api_as: Any, smtp: Mailbox) -> None:
    created = invite(api_as("owner")).json()
    path = re.search(r"(/invitations/[^/\s]+/)", smtp.messages[0].content.decode())
    assert path
    # an outsider may not revoke it
    assert api_as("outsider").delete(f"{URL}/{created['id']}").status_code == 404
    # when the owner revokes it, twice
    assert api_as("owner").delete(f"{URL}/{created['id']}").status_code == 204
    assert api_as("owner").delete(f"{URL}/{created['id']}").status_code == 204
    # then the link is dead, the row stays cancelled, one event says so
    assert Client().get(path.group(1)).status_code == 404
    shown = api_as("owner").get(f"{URL}/{created['id']}").json()
    assert shown["state"] == "cancelled" and shown["cancelled_at"]
    assert Event.objects.filter(action=InvitationEvent.CANCELLED).count() == 1
    # and the address may be invited again
    assert invite(api_as("owner")).status_code == 201


def test_an_accepted_invitation_cannot_be_revoked(api_as: Any, world: Any, smtp: Mailbox) -> None:
    created = invite(api_as("owner"), email="o@example.com").json()
    path = re.search(r"(/invitations/[^/\s]+/)", smtp.messages[0].content.decode())
    assert path
    client = Client()
    client.force_login(world.outsider)
    assert client.post(path.group(1)).status_code == 302
    answer = api_as("owner").delete(f"{URL}/{created['id']}")
    assert answer.status_code == 409 and "remove their membership" in str(answer.json())


def test_a_refused_email_saves_nothing(api_as: Any, settings: Any) -> None:
    # given a mail server that is not listening
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    answer = invite(api_as("owner"))
    assert answer.status_code == 502 and "nothing was saved" in str(answer.json())
    assert not Invitation.objects.exists()
    assert not Event.objects.filter(action=InvitationEvent.SENT).exists()


def test_the_schema_documents_the_invitations(api_as: Any) -> None:
    schema = (
        api_as("owner").get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    )
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/invitations"])
    assert {"get", "delete"} <= set(paths["/api/v1/invitations/{id}"])
    post = paths["/api/v1/invitations"]["post"]
    assert "InvitationCreate" in str(post["requestBody"]) and "502" in post["responses"]
