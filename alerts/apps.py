"""The Alerts app: rules, incidents, silences, routes, channels and the notification outbox."""

from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the team receiver and registers the live fragments.
        from alerts import live, metrics, signals  # noqa: F401

        metrics.register()  # its part of /metrics
