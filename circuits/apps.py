"""App config: registers the circuits' live fragments and catalog signal receivers."""

from __future__ import annotations

from django.apps import AppConfig


class CircuitsConfig(AppConfig):
    name = "circuits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from circuits import live, receivers  # noqa: F401  (registration happens on import)
