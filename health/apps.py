"""App config: connects health to catalog's signals and registers its live fragments."""

from __future__ import annotations

from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from health import live, metrics, receivers  # noqa: F401  (live registers on import)

        metrics.register()  # its part of /metrics
