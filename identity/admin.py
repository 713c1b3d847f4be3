"""Django admin: which accounts sign in through the identity provider (read only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from identity.models import SsoIdentity


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin[SsoIdentity]):
    list_display = ["user", "issuer", "subject", "last_login_at"]
    search_fields = ["user__username", "subject"]
    readonly_fields = ["user", "issuer", "subject", "groups", "created_at", "last_login_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by the first SSO login; deleting one unlinks the account
