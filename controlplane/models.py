"""The Event: one row per fact worth seeing, the timeline and the audit log in one."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Event(models.Model):
    """Something that happened: who did what to which subject, in which team/service/env."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=80, db_index=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_token = models.ForeignKey(
        "catalog.ApiToken", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Kept as text so the audit log still names the actor after a user or token is deleted.
    actor_label = models.CharField(max_length=200, default="system")
    subject_type = models.CharField(max_length=60, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    subject_label = models.CharField(max_length=300, blank=True)
    team = models.ForeignKey(
        "catalog.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    service = models.ForeignKey(
        "catalog.Service", on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    environment = models.ForeignKey(
        "catalog.Environment",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events",
    )
    message = models.CharField(max_length=500, blank=True)
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="event_team_time"),
            models.Index(fields=["service", "-created_at"], name="event_service_time"),
            models.Index(fields=["subject_type", "subject_id"], name="event_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.subject_label}"
