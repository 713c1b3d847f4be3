"""The Alerts app: rules, incidents, silences, routes, channels and the notification outbox."""

from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the team receiver and registers the live fragments.
        from alerts import live, metrics, signals  # noqa: F401, I001
        from alerts import catalog_channel, catalog_route, catalog_rule

        metrics.register()  # its part of /metrics
        # Its kinds of catalog files, channels before the routes that name them.
        catalog_channel.register()
        catalog_route.register()
        catalog_rule.register()
