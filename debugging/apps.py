"""Debugging's app config: connects to catalog's signals."""

from __future__ import annotations

from django.apps import AppConfig


class DebuggingConfig(AppConfig):
    name = "debugging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from debugging import receivers  # noqa: F401  (registration happens on import)
