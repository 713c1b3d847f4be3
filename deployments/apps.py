"""The Deployments app (its live renderers in live.py are found by the spine on first use;
its part of /metrics and the FreezeWindow kind of catalog files are registered when the app
is ready)."""

from __future__ import annotations

from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from deployments import catalog_kind, metrics

        metrics.register()
        catalog_kind.register()
