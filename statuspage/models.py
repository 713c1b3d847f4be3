"""Public status pages (which services, under which names, what incidents say) and badges.

Nothing here is shown publicly unless an operator put it here: a page names its services
by display name, and a published incident carries its own public title and message,
never the internal incident's (docs/status-page.md).
"""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

from catalog.models import Environment, Service, Team
from statuspage.choices import BadgeKind, IncidentStatus, Indicator

# 32 random bytes: a badge URL cannot be guessed, only handed out (and rotated).
BADGE_TOKEN_BYTES = 32


def new_badge_token() -> str:
    return secrets.token_urlsafe(BADGE_TOKEN_BYTES)


class StatusPage(models.Model):
    """A public page (no login) showing some services of one environment."""

    slug = models.SlugField(max_length=63, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="status_pages")
    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="status_pages"
    )
    published = models.BooleanField(default=False, help_text="Unpublished pages answer 404.")
    show_team_names = models.BooleanField(default=False)
    show_maintenance_reasons = models.BooleanField(
        default=False,
        help_text="Show each maintenance window's reason; else 'Scheduled maintenance'.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def owning_team(self) -> Team:
        return self.team


class StatusPageService(models.Model):
    """One service on a page (a Statuspage 'component'), under the name the public sees."""

    page = models.ForeignKey(StatusPage, on_delete=models.CASCADE, related_name="entries")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="status_entries")
    display_name = models.CharField(max_length=100)
    group = models.CharField(max_length=100, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["page", "service"], name="statuspage_service_once"),
            models.UniqueConstraint(
                fields=["page", "display_name"], name="statuspage_display_name_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.page.slug}: {self.display_name}"

    def owning_team(self) -> Team:
        return self.page.team


class PublicIncident(models.Model):
    """What the operator chose to tell the public about an incident."""

    page = models.ForeignKey(StatusPage, on_delete=models.CASCADE, related_name="incidents")
    title = models.CharField(max_length=200)
    message = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.INVESTIGATING
    )
    impact = models.CharField(max_length=16, choices=Indicator.choices, default=Indicator.MINOR)
    entries = models.ManyToManyField(StatusPageService, blank=True, related_name="incidents")
    # The internal incident this tells about: kept for the operators, never shown.
    incident = models.ForeignKey(
        "alerts.Incident", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["page", "status"], name="public_incident_open")]

    def __str__(self) -> str:
        return f"{self.page.slug}: {self.title}"

    def owning_team(self) -> Team:
        return self.page.team

    @property
    def is_open(self) -> bool:
        return self.status != IncidentStatus.RESOLVED


class Badge(models.Model):
    """An SVG badge of one service's state or uptime, served at an unguessable URL."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="badges")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="badges")
    kind = models.CharField(max_length=16, choices=BadgeKind.choices, default=BadgeKind.STATE)
    label = models.CharField(max_length=60, blank=True, help_text="Empty: the service's name.")
    token = models.CharField(max_length=64, unique=True, default=new_badge_token, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["service__slug", "kind", "id"]

    def __str__(self) -> str:
        return f"{self.service.slug} {self.kind} badge"

    def owning_team(self) -> Team:
        return self.service.team

    @property
    def shown_label(self) -> str:
        return self.label or self.service.name

    def rotate(self) -> None:
        """A new token: the old URL answers 404 from now on."""
        self.token = new_badge_token()
        self.rotated_at = timezone.now()
        self.save(update_fields=["token", "rotated_at"])
