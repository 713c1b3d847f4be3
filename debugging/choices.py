"""Named kinds, states and event names of runtime config and debug windows."""

from __future__ import annotations

from django.db import models

from controlplane.events import EventNames


class Kind(models.TextChoices):
    """What a config key holds, which decides how it is checked and shown."""

    LOG_LEVEL = "log_level", "Log level (per logger)"
    FLAG = "flag", "Feature flag (true/false)"
    ENDPOINT = "endpoint", "Endpoint (URL)"
    VALUE = "value", "Value (string, number or JSON)"
    SECRET = "secret", "Secret (encrypted, never shown)"


# Python logging's levels; TRACE and OFF are Spring Boot's and only reach actuator services.
PYTHON_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ACTUATOR_ONLY_LEVELS = ("TRACE", "OFF")
LEVELS = (*PYTHON_LEVELS, *ACTUATOR_ONLY_LEVELS)


class Delivery(models.TextChoices):
    """How a service takes a debug window's level."""

    CLIENT = "client", "signalbox-client (long-polled config)"
    ACTUATOR = "actuator", "Spring Boot Actuator /actuator/loggers"
    WEBHOOK = "webhook", "Webhook (POST JSON)"


class WindowState(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Revert(models.TextChoices):
    """What reading the level back after a window showed, per instance."""

    PENDING = "pending", "Pending"
    VERIFIED = "verified", "Revert verified"
    UNVERIFIED = "unverified", "Revert unverified"


class ConfigEvent(EventNames):
    FAMILY = "config."
    CHANGED = "config.changed"
    REVERTED = "config.reverted"


class DebugWindowEvent(EventNames):
    FAMILY = "debug_window."
    OPENED = "debug_window.opened"
    APPLIED = "debug_window.applied"
    APPLY_FAILED = "debug_window.apply_failed"
    CLOSED = "debug_window.closed"
    REVERT_VERIFIED = "debug_window.revert_verified"
    REVERT_UNVERIFIED = "debug_window.revert_unverified"
    DELIVERY_CHANGED = "debug_window.delivery_changed"
