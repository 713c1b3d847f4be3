"""Health listens to the catalog: registered instances get checks, deregistered ones lose them."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from catalog.models import Instance
from catalog.signals import instance_deregistered, instance_registered
from health import services


@receiver(instance_registered, dispatch_uid="health.ensure_checks")
def on_instance_registered(sender: Any, instance: Instance, **kwargs: Any) -> None:
    services.ensure_checks(instance)


@receiver(instance_deregistered, dispatch_uid="health.forget_checks")
def on_instance_deregistered(sender: Any, instance: Instance, **kwargs: Any) -> None:
    services.forget_checks(instance)
