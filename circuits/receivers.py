"""Keeps label-derived scrape targets in step with instances as the catalog registers them."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from catalog.models import Instance
from catalog.signals import instance_deregistered, instance_registered
from circuits.ingest.scrape import sync_instance
from circuits.staleness import forget_instance


@receiver(instance_registered)
def _instance_registered(sender: Any, instance: Instance, **kwargs: Any) -> None:
    # The periodic sweep (circuits.tasks.sync_scrape_targets) repairs anything missed here.
    sync_instance(instance)


@receiver(instance_deregistered)
def _instance_deregistered(sender: Any, instance: Instance, **kwargs: Any) -> None:
    sync_instance(instance)
    forget_instance(instance.pk)
