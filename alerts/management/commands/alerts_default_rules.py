"""Create the default alert rules of every team that lacks some (safe to run again)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from alerts.defaults import ensure_default_rules
from catalog.models import Team


class Command(BaseCommand):
    help = "Create missing default alert rules for every team (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        for team in Team.objects.all():
            created = ensure_default_rules(team)
            total += created
            if created:
                self.stdout.write(f"{team.slug}: {created} default rule(s) created")
        self.stdout.write(self.style.SUCCESS(f"done: {total} rule(s) created"))
