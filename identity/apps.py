"""Identity's app config: refuses a bad group mapping or API rate at startup."""

from __future__ import annotations

from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"

    def ready(self) -> None:
        from identity import group_roles, lockout, throttling

        group_roles.mapping()  # raises ImproperlyConfigured naming the bad entry
        for scope, rate in throttling.rates().items():
            throttling.parse_rate(f"SIGNALBOX_API_{scope.upper()}_RATE", rate)
        lockout.connect()
