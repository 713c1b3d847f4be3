"""Catalog signals debugging listens to: an instance that registers during an open debug
window gets it."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from catalog import signals
from catalog.models import Instance
from debugging import windows


@receiver(signals.instance_registered, dispatch_uid="debugging-join-windows")
def join_open_windows(sender: Any, instance: Instance, **kwargs: Any) -> None:
    windows.join(instance)
