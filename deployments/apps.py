"""The Deployments app (its live renderers in live.py are found by the spine on first use;
its part of /metrics is registered when the app is ready)."""

from __future__ import annotations

from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from deployments import metrics

        metrics.register()
