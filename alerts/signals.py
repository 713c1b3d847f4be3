"""Every new team gets the default rules, in the transaction that creates it."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from alerts.defaults import ensure_default_rules
from catalog.models import Team


@receiver(post_save, sender=Team, dispatch_uid="alerts.default_rules")
def give_new_team_default_rules(sender: Any, instance: Team, created: bool, **kwargs: Any) -> None:
    if created and not kwargs.get("raw", False):
        ensure_default_rules(instance)
