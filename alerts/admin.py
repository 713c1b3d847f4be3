"""Admin for what platform admins manage by hand: Slack identities, and a look at the rest."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from alerts import channels
from alerts.choices import RolloutNotice
from alerts.models import Channel, Incident, Route, Rule, Silence, SlackIdentity, Subscription


@admin.register(SlackIdentity)
class SlackIdentityAdmin(admin.ModelAdmin[SlackIdentity]):
    list_display = ["slack_team_id", "slack_user_id", "user"]
    search_fields = ["slack_user_id", "user__username"]


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin[Rule]):
    list_display = ["name", "team", "kind", "severity", "enabled"]
    list_filter = ["kind", "severity", "enabled"]


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin[Incident]):
    list_display = ["id", "title", "team", "state", "severity", "fire_at"]
    list_filter = ["state", "severity"]
    readonly_fields = [f.name for f in Incident._meta.fields]


class ChannelAdminForm(forms.ModelForm[Channel]):
    """The secret is write-only here too: typed in, checked as the API checks it, never
    rendered back (blank keeps the stored one)."""

    new_secret = forms.CharField(
        required=False,
        label="Secret",
        widget=forms.PasswordInput,
        help_text="Slack webhook URL, PagerDuty routing key, webhook signing secret or Apprise "
        "URL. Leave blank to keep the stored one.",
    )

    class Meta:
        model = Channel
        fields = ["team", "name", "kind", "url", "config", "enabled"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        instance = self.instance
        errors = channels.check(
            str(data.get("kind") or instance.kind),
            data.get("new_secret") or "",
            data.get("url") or "",
            data.get("config") or {},
            has_secret=bool(instance.pk and instance.secret),
        )
        for field, reasons in errors.items():
            target = {"secret": "new_secret", "config.to": "config"}.get(field, field)
            self.add_error(target if target in self.fields else None, reasons)
        return data

    def save(self, commit: bool = True) -> Channel:
        if self.cleaned_data.get("new_secret"):
            self.instance.secret = self.cleaned_data["new_secret"]
        return super().save(commit)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin[Channel]):
    form = ChannelAdminForm
    list_display = ["name", "team", "kind", "secret_redacted", "enabled"]
    readonly_fields = ["secret_redacted"]

    @admin.display(description="secret")
    def secret_redacted(self, channel: Channel) -> str:
        # Apprise URLs as Apprise redacts them (tokens elided); other secrets masked.
        return channel.masked_secret


class SubscriptionAdminForm(forms.ModelForm[Subscription]):
    events = forms.MultipleChoiceField(
        choices=RolloutNotice.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Subscription
        fields = [
            "team",
            "channel",
            "events",
            "service",
            "environment",
            "production_only",
            "enabled",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        team, channel, service = data.get("team"), data.get("channel"), data.get("service")
        if team and channel and channel.team_id != team.pk:
            self.add_error("channel", f"{channel} is not {team}'s channel")
        if team and service and service.team_id != team.pk:
            self.add_error("service", f"{service} is not {team}'s service")
        return data


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin[Subscription]):
    form = SubscriptionAdminForm
    list_display = ["team", "channel", "events", "service", "environment", "enabled"]
    list_filter = ["enabled"]


admin.site.register(Route)
admin.site.register(Silence)
