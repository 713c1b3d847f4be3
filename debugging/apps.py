"""Debugging's app config: connects to catalog's signals, adds RuntimeConfig to catalog files."""

from __future__ import annotations

from django.apps import AppConfig


class DebuggingConfig(AppConfig):
    name = "debugging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from debugging import catalog_kind, receivers  # noqa: F401  (receivers register on import)

        catalog_kind.register()
