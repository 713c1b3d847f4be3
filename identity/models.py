"""Who a person is at the identity provider: the account an SSO login signs in to."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SsoIdentity(models.Model):
    """An identity provider's subject (issuer + `sub`) linked to one Signalbox account."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities"
    )
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    groups = models.JSONField(default=list, blank=True, help_text="As of the last login.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField()

    class Meta:
        ordering = ["issuer", "subject"]
        verbose_name = "SSO identity"
        verbose_name_plural = "SSO identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="ssoidentity_unique_subject")
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.issuer}"
