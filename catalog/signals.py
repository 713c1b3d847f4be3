"""Signals other apps connect to, so the catalog never imports them (health listens here)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

# Sent with `instance=` once an instance's creation or re-registration has committed.
instance_registered = Signal()
# Sent with `instance=` once an instance's deregistration has committed.
instance_deregistered = Signal()


def send_on_commit(signal: Signal, instance: Any) -> None:
    """Send `signal` for `instance` once the current transaction commits (never on rollback)."""

    def send() -> None:
        # A failing receiver must not hide the others; the committed row is the truth, and
        # receivers are expected to catch up (health's ensure_checks is idempotent).
        for receiver, result in signal.send_robust(sender=type(instance), instance=instance):
            if isinstance(result, Exception):
                logger.error(
                    "receiver %r failed for instance %s",
                    receiver,
                    instance.pk,
                    exc_info=(type(result), result, result.__traceback__),
                )

    transaction.on_commit(send)
