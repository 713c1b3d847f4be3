"""Topology's app config."""

from __future__ import annotations

from django.apps import AppConfig


class TopologyConfig(AppConfig):
    name = "topology"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from catalog.models import Environment, ExternalDependency, Service
        from topology.ingest.service import catalog_changed

        for model in (Service, Environment, ExternalDependency):
            post_save.connect(catalog_changed, sender=model, dispatch_uid=f"topology-{model}")
            post_delete.connect(catalog_changed, sender=model, dispatch_uid=f"topology-d-{model}")
