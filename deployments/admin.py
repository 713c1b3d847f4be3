"""Admin for what platform admins configure: routers, routes, deploy settings, freeze windows."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from deployments.models import (
    DeploySettings,
    FreezeWindow,
    RecurringFreezeWindow,
    Rollout,
    TrafficRoute,
    TrafficRouter,
)
from deployments.schedule import local_label, utc_iso


class TrafficRouterForm(forms.ModelForm[TrafficRouter]):
    """Credentials are write-only: shown masked, kept when the field is left empty."""

    credentials = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="aws_alb: ACCESS_KEY_ID:SECRET_ACCESS_KEY (empty: keep the stored value).",
    )

    class Meta:
        model = TrafficRouter
        fields = ["name", "kind", "team", "connection", "credentials", "timeout_seconds", "retries"]

    def clean_credentials(self) -> str:
        value = self.cleaned_data.get("credentials") or ""
        if not value and self.instance.pk:
            return self.instance.credentials or ""
        return value


@admin.register(TrafficRouter)
class TrafficRouterAdmin(admin.ModelAdmin[TrafficRouter]):
    form = TrafficRouterForm
    list_display = ["name", "kind", "team", "masked_credentials", "timeout_seconds", "retries"]


@admin.register(TrafficRoute)
class TrafficRouteAdmin(admin.ModelAdmin[TrafficRoute]):
    list_display = ["service", "environment", "router", "backend", "rule_arn"]
    list_select_related = ["service", "environment", "router"]


@admin.register(DeploySettings)
class DeploySettingsAdmin(admin.ModelAdmin[DeploySettings]):
    list_display = ["service", "strategy", "progress_deadline_seconds", "rollback_window_seconds"]


@admin.register(FreezeWindow)
class FreezeWindowAdmin(admin.ModelAdmin[FreezeWindow]):
    list_display = ["environment", "starts_at", "ends_at", "reason", "created_by"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(RecurringFreezeWindow)
class RecurringFreezeWindowAdmin(admin.ModelAdmin[RecurringFreezeWindow]):
    """Weekly windows in a local time zone (days as `fri` or `mon,tue`; see docs/deployments.md)."""

    list_display = ["environment", "name", "schedule", "reason", "frozen_until", "created_by"]
    list_select_related = ["environment", "created_by"]
    list_filter = ["environment"]

    @admin.display(description="Frozen now until")
    def frozen_until(self, obj: RecurringFreezeWindow) -> str:
        occurrence = obj.covering(timezone.now())
        if occurrence is None:
            return "-"
        return f"{utc_iso(occurrence[1])} ({local_label(occurrence[1], obj.timezone)})"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Rollout)
class RolloutAdmin(admin.ModelAdmin[Rollout]):
    """Read-only: rollouts change through their actions, which record who did what."""

    list_display = ["id", "service", "environment", "to_version", "state", "created_at"]
    list_filter = ["state", "environment"]
    list_select_related = ["service", "environment"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
