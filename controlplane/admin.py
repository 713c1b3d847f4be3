"""Django admin for the audit log: events can be read and searched, never changed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from controlplane.events import families
from controlplane.models import Event


class ActionFamilyFilter(admin.SimpleListFilter):
    title = "action"
    parameter_name = "family"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [(family, family + "*") for family in families()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        value = self.value()
        return queryset.filter(action__startswith=value) if value else queryset


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    list_display = [
        "created_at",
        "action",
        "subject_label",
        "team",
        "service",
        "environment",
        "actor_label",
    ]
    list_filter = [ActionFamilyFilter, "team", "environment"]
    list_select_related = ["team", "service", "environment"]
    search_fields = ["action", "subject_label", "actor_label", "message"]
    # The audit log grows without bound: counting all of it for every page is the slow part.
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Event | None = None) -> list[str]:
        return [field.name for field in Event._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False  # only the retention task (controlplane.tasks.prune_events) deletes
