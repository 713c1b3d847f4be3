"""App config: connects health to catalog's signals, registers its live fragments and adds
CheckSpec and Heartbeat to catalog files."""

from __future__ import annotations

from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from health import catalog_heartbeat, catalog_kind, live, metrics, receivers  # noqa: F401  (live registers on import)

        metrics.register()  # its part of /metrics
        catalog_kind.register()
        catalog_heartbeat.register()
