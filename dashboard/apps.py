"""The dashboard's app config: its live renderers register in every process that publishes."""

from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"

    def ready(self) -> None:
        # The spine discovers `<app>.live` modules on its first broadcast; importing ours
        # here too registers the home, team and service sections before any page connects.
        from dashboard import live  # noqa: F401
