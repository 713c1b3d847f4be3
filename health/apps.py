"""App config: connects health to catalog's signals and registers its live fragments."""

from __future__ import annotations

from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from health import live, receivers  # noqa: F401  (registration happens on import)
