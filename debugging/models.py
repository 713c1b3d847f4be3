"""Debugging's tables: versioned runtime config, how a service takes log levels, debug
windows and what each did to each instance."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from catalog.models import Environment, Instance, Service, Team
from controlplane.crypto import EncryptedTextField
from debugging.choices import Delivery, Kind, Revert, WindowState


class ConfigVersion(models.Model):
    """One version of a service's runtime config in an environment: a full snapshot."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="config_versions")
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="config_versions"
    )
    number = models.PositiveIntegerField()
    actor_label = models.CharField(max_length=200, blank=True)
    message = models.CharField(max_length=300, blank=True)
    reverted_to = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["service", "environment", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment", "number"], name="config_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.service.slug}/{self.environment.slug} v{self.number}"

    def owning_team(self) -> Team:
        return self.service.team


class ConfigEntry(models.Model):
    """One key of a config version. Secrets live encrypted in `secret`, never in `value`."""

    version = models.ForeignKey(ConfigVersion, on_delete=models.CASCADE, related_name="entries")
    key = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = models.JSONField(null=True, blank=True)
    secret = EncryptedTextField(blank=True, default="")

    class Meta:
        ordering = ["version", "kind", "key"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "kind", "key"], name="config_entry_unique_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} {self.key}"


class DeliverySetting(models.Model):
    """How a service takes a debug window's level: its client, Actuator, or a webhook."""

    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="debug_delivery")
    method = models.CharField(max_length=16, choices=Delivery.choices, default=Delivery.CLIENT)
    webhook_url = models.URLField(max_length=500, blank=True)
    # Signs each webhook call (X-Signalbox-Signature, HMAC-SHA256); never shown back in full.
    webhook_secret = EncryptedTextField(blank=True, default="")

    def __str__(self) -> str:
        return f"{self.service.slug}: {self.method}"

    def owning_team(self) -> Team:
        return self.service.team


class DebugWindow(models.Model):
    """A logger's level raised for a while on one instance, a zone, or a whole service in an
    environment; reverted by itself at `ends_at` and read back."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="debug_windows")
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="debug_windows"
    )
    instance = models.ForeignKey(
        Instance, on_delete=models.SET_NULL, null=True, blank=True, related_name="debug_windows"
    )
    zone = models.CharField(max_length=63, blank=True)
    logger = models.CharField(max_length=200)
    level = models.CharField(max_length=8)
    method = models.CharField(max_length=16, choices=Delivery.choices)
    reason = models.CharField(max_length=500)
    incident_ref = models.CharField(max_length=300, blank=True)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    opened_by_label = models.CharField(max_length=200)
    opened_at = models.DateTimeField(auto_now_add=True)
    ends_at = models.DateTimeField()
    state = models.CharField(max_length=8, choices=WindowState.choices, default=WindowState.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by_label = models.CharField(max_length=200, blank=True)
    # After closing, read-backs that have not proved the revert are retried until this.
    verify_until = models.DateTimeField(null=True, blank=True)
    # A worker reverting it holds this lease; past it another worker may take over.
    lease_until = models.DateTimeField(null=True, blank=True)
    # Revert passes that left a target pending; each waits longer (backoff) before the next.
    revert_passes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["state", "ends_at"], name="debug_window_due")]

    def __str__(self) -> str:
        return f"{self.logger}={self.level} on {self.scope_label()}"

    def owning_team(self) -> Team:
        return self.service.team

    def scope_label(self) -> str:
        where = f"{self.service.slug} in {self.environment.slug}"
        if self.instance_id is not None and self.instance is not None:
            return f"{self.instance.address} of {where}"
        if self.zone:
            return f"zone {self.zone} of {where}"
        return where

    def covers(self, instance: Instance) -> bool:
        """Does this window apply to `instance` (same service and environment assumed)?"""
        if self.instance_id is not None:
            return instance.pk == self.instance_id
        if self.zone:
            return instance.zone == self.zone
        return True

    def as_overlay(self) -> dict[str, Any]:
        return {
            "logger": self.logger,
            "level": self.level,
            "window": self.pk,
            "ends_at": self.ends_at.isoformat(),
        }


class DebugTarget(models.Model):
    """What a window did to one instance: the level before, applied, reverted, read back."""

    window = models.ForeignKey(DebugWindow, on_delete=models.CASCADE, related_name="targets")
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="debug_targets")
    previous_level = models.CharField(max_length=8, null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    apply_error = models.CharField(max_length=500, blank=True)
    # A failed apply is retried by the beat with backoff until the window ends.
    apply_attempts = models.PositiveIntegerField(default=0)
    next_apply_at = models.DateTimeField(null=True, blank=True)
    revert = models.CharField(max_length=12, choices=Revert.choices, default=Revert.PENDING)
    read_back = models.CharField(max_length=8, null=True, blank=True)
    revert_detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["window", "instance"]
        constraints = [
            models.UniqueConstraint(fields=["window", "instance"], name="debug_target_unique")
        ]

    def __str__(self) -> str:
        return f"{self.window} → {self.instance}"


class AppliedLevels(models.Model):
    """The log levels a client-library instance last said it has applied, for read-back."""

    instance = models.OneToOneField(
        Instance, on_delete=models.CASCADE, related_name="applied_levels"
    )
    levels = models.JSONField(default=dict)
    reported_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.instance}: {self.levels}"
