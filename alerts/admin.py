"""Admin for what platform admins manage by hand: Slack identities, and a look at the rest."""

from __future__ import annotations

from django.contrib import admin

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


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin[Channel]):
    list_display = ["name", "team", "kind", "secret_redacted", "enabled"]
    exclude = ["secret"]  # set through the API or the team's alert settings, never shown
    readonly_fields = ["secret_redacted"]

    @admin.display(description="secret")
    def secret_redacted(self, channel: Channel) -> str:
        # Apprise URLs as Apprise redacts them (tokens elided); other secrets masked.
        return channel.masked_secret


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin[Subscription]):
    list_display = ["team", "channel", "events", "service", "environment", "enabled"]
    list_filter = ["enabled"]


admin.site.register(Route)
admin.site.register(Silence)
