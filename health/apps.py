"""App config: connects health to catalog's signals, registers its live fragments and adds
CheckSpec, Heartbeat and MaintenanceWindow to catalog files."""

from __future__ import annotations

from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from health import (  # noqa: F401  (live registers on import)
            catalog_heartbeat,
            catalog_kind,
            catalog_maintenance,
            live,
            metrics,
            receivers,
        )

        metrics.register()  # its part of /metrics
        catalog_kind.register()
        catalog_heartbeat.register()
        catalog_maintenance.register()
