"""`manage.py issue_token --team SLUG --scopes read,deploy --name NAME`: print a token once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from catalog.choices import Scope, TokenEvent
from catalog.models import ApiToken, Service, Team
from controlplane.events import publish


class Command(BaseCommand):
    help = (
        "Issue an API token for a team and print it. The value is shown only this once: "
        "only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", required=True, help="slug of the team that owns the token")
        parser.add_argument(
            "--scopes",
            required=True,
            help=f"comma-separated, from: {', '.join(Scope.values)}",
        )
        parser.add_argument("--name", required=True, help="a name unique among the team's tokens")
        parser.add_argument(
            "--service", help="bind the token to one of the team's services (slug)", default=None
        )

    def handle(self, *args: Any, **options: Any) -> None:
        team = self._team(options["team"])
        scopes = self._scopes(options["scopes"])
        service = self._service(options["service"], team) if options["service"] else None
        name = options["name"].strip()
        if not name or len(name) > 100:
            raise CommandError("--name must be 1-100 characters")
        if ApiToken.objects.active().filter(team=team, name=name).exists():
            raise CommandError(
                f"team '{team.slug}' already has an active token named '{name}': "
                "pick another --name, or revoke the old token first"
            )
        with transaction.atomic():
            token, plain = ApiToken.issue(team=team, name=name, scopes=scopes, service=service)
            publish(
                TokenEvent.ISSUED,
                actor="manage.py issue_token",
                subject=token,
                message=f"token {token} issued with {', '.join(token.scopes)}",
                payload={"scopes": token.scopes},
            )
        bound = f", bound to service {service.slug}" if service else ""
        self.stderr.write(
            f"Issued token '{name}' for team {team.slug} with scopes "
            f"{', '.join(token.scopes)}{bound}. It is shown only now; store it safely:"
        )
        self.stdout.write(plain)
        self.stderr.write("Use it as: Authorization: Bearer <token>")

    def _team(self, slug: str) -> Team:
        team = Team.objects.filter(slug=slug).first()
        if team is None:
            known = ", ".join(Team.objects.values_list("slug", flat=True)[:20]) or "none yet"
            raise CommandError(f"unknown team '{slug}'; known teams: {known}")
        return team

    def _scopes(self, raw: str) -> list[str]:
        scopes = [part.strip() for part in raw.split(",") if part.strip()]
        unknown = [scope for scope in scopes if scope not in Scope.values]
        if unknown or not scopes:
            raise CommandError(
                f"unknown scope {', '.join(repr(u) for u in unknown) or '(none given)'}; "
                f"use a comma-separated list of: {', '.join(Scope.values)}"
            )
        return scopes

    def _service(self, slug: str, team: Team) -> Service:
        service = Service.objects.select_related("team").filter(slug=slug).first()
        if service is None:
            raise CommandError(f"unknown service '{slug}'")
        if service.team_id != team.pk:
            raise CommandError(
                f"service '{slug}' belongs to team '{service.team.slug}', not '{team.slug}'"
            )
        return service
