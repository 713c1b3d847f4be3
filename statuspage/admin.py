"""Admin for status pages (with their services), published incidents and badges."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from statuspage.models import Badge, PublicIncident, StatusPage, StatusPageService


class StatusPageServiceInline(admin.TabularInline[StatusPageService, StatusPage]):
    model = StatusPageService
    extra = 1
    autocomplete_fields = ["service"]
    fields = ["position", "service", "display_name", "group"]


@admin.register(StatusPage)
class StatusPageAdmin(admin.ModelAdmin[StatusPage]):
    list_display = ["slug", "title", "team", "environment", "published"]
    list_filter = ["published", "team"]
    search_fields = ["slug", "title"]
    inlines = [StatusPageServiceInline]


@admin.register(PublicIncident)
class PublicIncidentAdmin(admin.ModelAdmin[PublicIncident]):
    list_display = ["title", "page", "status", "impact", "created_at"]
    list_filter = ["status", "impact", "page"]
    raw_id_fields = ["incident"]
    filter_horizontal = ["entries"]


@admin.action(description="Rotate the URL (the old one answers 404)")
def rotate(modeladmin: BadgeAdmin, request: HttpRequest, queryset: QuerySet[Badge]) -> None:
    for badge in queryset:
        badge.rotate()
    messages.info(request, f"{len(queryset)} badge URL(s) rotated")


@admin.register(Badge)
class BadgeAdmin(admin.ModelAdmin[Badge]):
    list_display = ["service", "environment", "kind", "label", "enabled", "rotated_at"]
    list_filter = ["kind", "enabled"]
    readonly_fields = ["token", "created_at", "rotated_at"]
    actions = [rotate]
