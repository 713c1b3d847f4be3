"""The catalog's rows of the permission matrix (see catalog/tests/matrix.py, docs/api.md)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from catalog.choices import Role
from catalog.models import (
    ApiToken,
    Environment,
    ExternalDependency,
    Instance,
    Invitation,
    Team,
)
from catalog.tests.matrix import PERSONAS, Case, Row, allow, read

# Who may change the things of the world's team (payments): its owner, a platform admin,
# and a payments token with `write`.
TEAM_WRITERS = ("owner", "admin", "token:write")
# Who may register instances of payments' services: deployers and owners, admins, and a
# payments token with `report`.
REPORTERS = ("deployer", "owner", "admin", "token:report")
# Token management is for people: tokens get 403; people who do not own the team see no
# such token (404).
TOKEN_OWNERS = ("owner", "admin")
NOT_YOURS = {"viewer": 404, "deployer": 404, "outsider": 404}


def sandbox_team(case: Case) -> None:
    case.made["sandbox"] = Team.objects.create(slug="sandbox", name="Sandbox")


def stripe(case: Case) -> None:
    case.made["stripe"] = ExternalDependency.objects.create(slug="stripe", name="Stripe")


def an_instance(case: Case) -> None:
    case.made["instance"] = Instance.objects.create(
        service=case.world.service, environment=case.world.staging, host="10.0.0.5", port=8080
    )


def a_ci_token(case: Case) -> None:
    case.made["token"], _ = ApiToken.issue(team=case.world.team, name="ci", scopes=["deploy"])


def an_invitation(case: Case) -> None:
    case.made["invitation"] = Invitation.objects.create(
        team=case.world.team, email="new@example.com", token_hash="0" * 64,
        expires_at=timezone.now() + Invitation.lifetime(),
    )  # fmt: skip


def viewer_membership(case: Case) -> dict[str, Any]:
    return {"pk": case.world.viewer.memberships.get(team=case.world.team).pk}


def instance_address(case: Case) -> dict[str, Any]:
    return {"service": "checkout", "environment": "staging", "host": "10.0.0.5", "port": 8080}


SERVICE_YAML = """apiVersion: signalbox.dev/v1
kind: Service
metadata:
  name: checkout
  title: Checkout
  description: Takes the money.
spec:
  owner: payments
"""

PERMISSION_MATRIX = [
    # teams: admins create and delete, owners edit their own
    Row("team-list", "GET", read()),
    Row(
        "team-list",
        "POST",
        allow("admin", status=201),
        body=lambda c: {"slug": "new", "name": "New"},
    ),
    Row("team-detail", "GET", read(), kwargs=lambda c: {"slug": "payments"}),
    Row(
        "team-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=lambda c: {"slug": "payments"},
        body=lambda c: {"name": "Payments & billing"},
    ),
    Row(
        "team-detail",
        "DELETE",
        allow("admin", status=204),
        kwargs=lambda c: {"slug": "sandbox"},
        setup=sandbox_team,
    ),
    # memberships: the team's owners manage them
    Row("membership-list", "GET", read()),
    Row(
        "membership-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        body=lambda c: {"team": "payments", "user": "outsider", "role": Role.VIEWER},
    ),
    Row("membership-detail", "GET", read(), kwargs=viewer_membership),
    Row(
        "membership-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=viewer_membership,
        body=lambda c: {"role": Role.DEPLOYER},
    ),
    Row("membership-detail", "DELETE", allow(*TEAM_WRITERS, status=204), kwargs=viewer_membership),
    # environments and external dependencies: platform-wide, admins only
    Row("environment-list", "GET", read()),
    Row(
        "environment-list",
        "POST",
        allow("admin", status=201),
        body=lambda c: {"slug": "qa", "name": "QA", "order": 15},
    ),
    Row("environment-detail", "GET", read(), kwargs=lambda c: {"slug": "staging"}),
    Row(
        "environment-detail",
        "PATCH",
        allow("admin"),
        kwargs=lambda c: {"slug": "staging"},
        body=lambda c: {"name": "Stage"},
    ),
    Row(
        "environment-detail",
        "DELETE",
        allow("admin", status=204),
        kwargs=lambda c: {"slug": "qa"},
        setup=lambda c: c.made.setdefault("qa", Environment.objects.create(slug="qa", name="QA")),
    ),
    Row("external-dependency-list", "GET", read(), setup=stripe),
    Row(
        "external-dependency-list",
        "POST",
        allow("admin", status=201),
        body=lambda c: {"slug": "s3", "name": "Amazon S3"},
    ),
    Row(
        "external-dependency-detail",
        "GET",
        read(),
        kwargs=lambda c: {"slug": "stripe"},
        setup=stripe,
    ),
    Row(
        "external-dependency-detail",
        "PATCH",
        allow("admin"),
        kwargs=lambda c: {"slug": "stripe"},
        body=lambda c: {"status_page_url": "https://status.stripe.com/"},
        setup=stripe,
    ),
    Row(
        "external-dependency-detail",
        "DELETE",
        allow("admin", status=204),
        kwargs=lambda c: {"slug": "stripe"},
        setup=stripe,
    ),
    # services: the owner team writes
    Row("service-list", "GET", read(), query="team=payments&search=check"),
    Row(
        "service-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        body=lambda c: {"slug": "ledger", "name": "Ledger", "team": "payments"},
    ),
    Row("service-detail", "GET", read(), kwargs=lambda c: {"slug": "checkout"}),
    Row(
        "service-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=lambda c: {"slug": "checkout"},
        body=lambda c: {"description": "Takes the money."},
    ),
    Row(
        "service-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204),
        kwargs=lambda c: {"slug": "checkout"},
    ),
    # instances: the owner team writes; instances register themselves with `report`
    Row(
        "instance-list",
        "GET",
        read(),
        query="service=checkout&lifecycle=registered",
        setup=an_instance,
    ),
    Row(
        "instance-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        body=lambda c: {
            "service": "checkout",
            "environment": "staging",
            "host": "10.0.0.9",
            "port": 80,
        },
    ),
    Row(
        "instance-register",
        "POST",
        allow(*REPORTERS, status=201),
        body=lambda c: {**instance_address(c), "version": "1.0.0"},
    ),
    Row("instance-deregister", "POST", allow(*REPORTERS), body=instance_address, setup=an_instance),
    Row(
        "instance-detail",
        "GET",
        read(),
        kwargs=lambda c: {"pk": c.made["instance"].pk},
        setup=an_instance,
    ),
    Row(
        "instance-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=lambda c: {"pk": c.made["instance"].pk},
        body=lambda c: {"version": "1.0.1"},
        setup=an_instance,
    ),
    Row(
        "instance-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204),
        kwargs=lambda c: {"pk": c.made["instance"].pk},
        setup=an_instance,
    ),
    # tokens: people who own the team; tokens never manage tokens
    Row("token-list", "GET", allow("viewer", "deployer", "owner", "outsider", "admin")),
    Row(
        "token-list",
        "POST",
        allow(*TOKEN_OWNERS, status=201),
        body=lambda c: {"team": "payments", "name": "deploy bot", "scopes": ["deploy"]},
    ),
    Row(
        "token-detail",
        "GET",
        allow(*TOKEN_OWNERS, **NOT_YOURS),
        kwargs=lambda c: {"pk": c.made["token"].pk},
        setup=a_ci_token,
    ),
    Row(
        "token-detail",
        "DELETE",
        allow(*TOKEN_OWNERS, status=204, **NOT_YOURS),
        kwargs=lambda c: {"pk": c.made["token"].pk},
        setup=a_ci_token,
    ),
    Row(
        "token-revoke",
        "POST",
        allow(*TOKEN_OWNERS, **NOT_YOURS),
        kwargs=lambda c: {"pk": c.made["token"].pk},
        setup=a_ci_token,
    ),
    # invitations: whoever may change the team (a `write` token too, as for memberships);
    # others see none of its addresses (404)
    Row("invitation-list", "GET", read()),
    Row(
        "invitation-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        body=lambda c: {"team": "payments", "email": "new@example.com", "role": "viewer"},
    ),
    Row(
        "invitation-detail",
        "GET",
        allow("owner", "admin", token_read=404, token_foreign=404, **NOT_YOURS),
        kwargs=lambda c: {"pk": c.made["invitation"].pk},
        setup=an_invitation,
    ),
    Row(
        "invitation-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204, token_foreign=404, **NOT_YOURS),
        kwargs=lambda c: {"pk": c.made["invitation"].pk},
        setup=an_invitation,
    ),
    # catalog as code: import checks `write` on each team it touches; export is a read
    Row("catalog-import", "POST", allow(*TEAM_WRITERS), body=lambda c: {"yaml": SERVICE_YAML}),
    Row("catalog-export", "GET", read()),
    # its JSON Schema: anyone, credentials or not, since editors fetch it without any
    Row("catalog-schema", "GET", allow(*PERSONAS)),
]
