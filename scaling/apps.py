"""Scaling's app config."""

from __future__ import annotations

from django.apps import AppConfig


class ScalingConfig(AppConfig):
    name = "scaling"

    def ready(self) -> None:
        # Registers scaling's wanted router state with deployments' drift pass.
        from scaling import metrics, router_wants  # noqa: F401

        metrics.register()  # its part of /metrics
