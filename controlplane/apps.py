"""The spine's app config: the Event model, the audit log's admin, the live hub."""

from __future__ import annotations

from django.apps import AppConfig


class ControlplaneConfig(AppConfig):
    name = "controlplane"

    def ready(self) -> None:
        from controlplane import lookups

        lookups.register()
