"""App config of the public status pages and badges (docs/status-page.md)."""

from __future__ import annotations

from django.apps import AppConfig


class StatusPageConfig(AppConfig):
    name = "statuspage"
    verbose_name = "Status pages"
    default_auto_field = "django.db.models.BigAutoField"
