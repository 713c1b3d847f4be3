"""Django admin for platform admins: the catalog, with tokens shown by hash only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from catalog.choices import TokenEvent
from catalog.models import (
    ApiToken,
    Environment,
    ExternalDependency,
    Instance,
    Membership,
    Service,
    Team,
)
from controlplane.events import publish


class MembershipInline(admin.TabularInline[Membership, Team]):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    list_display = ["slug", "name", "slack_channel", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin[Environment]):
    list_display = ["slug", "name", "order", "is_production"]
    list_filter = ["is_production"]
    search_fields = ["slug", "name"]


@admin.register(ExternalDependency)
class ExternalDependencyAdmin(admin.ModelAdmin[ExternalDependency]):
    list_display = ["slug", "name", "status_page_url"]
    search_fields = ["slug", "name"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin[Service]):
    list_display = ["slug", "name", "team", "tier"]
    list_filter = ["tier", "team"]
    list_select_related = ["team"]
    search_fields = ["slug", "name", "team__slug"]
    autocomplete_fields = ["team", "depends_on", "external_dependencies"]


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin[Instance]):
    list_display = [
        "service",
        "environment",
        "address",
        "version",
        "zone",
        "lifecycle",
        "last_seen_at",
    ]
    list_filter = ["lifecycle", "environment", "service__team", "zone"]
    list_select_related = ["service", "environment"]
    search_fields = ["service__slug", "host", "version"]
    autocomplete_fields = ["service"]
    readonly_fields = ["registered_at", "last_seen_at"]


# Everything is shown and nothing is editable: a token is changed only by revoking it.
TOKEN_FIELDS = (
    "team",
    "service",
    "name",
    "scopes",
    "key_id",
    "key_hash",
    "created_by",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    """Tokens are issued by the API or `manage.py issue_token` (the only time the value is
    shown); here they can be seen by hash and revoked, never created, edited or deleted."""

    list_display = [
        "name",
        "team",
        "service",
        "scopes",
        "key_id",
        "created_at",
        "last_used_at",
        "expires_at",
        "state",
    ]
    list_filter = ["team", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["team", "service"]
    search_fields = ["name", "key_id", "team__slug"]
    fields = TOKEN_FIELDS
    readonly_fields = TOKEN_FIELDS
    actions = ["revoke"]

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        if token.revoked_at is not None:
            return "✕ revoked"
        return "● active" if token.is_active else "○ expired"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # a revoked token stays, so the audit log can still name it

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = 0
        with transaction.atomic():
            for token in queryset.select_for_update(of=("self",)).filter(revoked_at__isnull=True):
                token.revoke()
                publish(
                    TokenEvent.REVOKED,
                    actor=request.user,
                    subject=token,
                    message=f"token {token} revoked in the admin",
                )
                revoked += 1
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
