"""Alerts API shapes: strict input, slugs for references, secrets write-only and masked."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework import serializers

from alerts import channels
from alerts.choices import DEFAULT_NOTICES, IncidentState, RolloutNotice
from alerts.models import Channel, Incident, Route, Rule, Silence, Subscription, TimelineEntry
from alerts.rules import KINDS
from alerts.silences import clean_matchers
from catalog.api.serializers import CatalogSerializer
from catalog.models import Environment, Service, Team

MAX_GROUP_WAIT = 3600


class TimelineEntrySerializer(serializers.ModelSerializer[TimelineEntry]):
    class Meta:
        model = TimelineEntry
        fields = ["at", "kind", "message", "actor"]


class IncidentSerializer(serializers.ModelSerializer[Incident]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    service: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    environment: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    # DRF's metaclass moves declared fields off the class, so `root` does not shadow
    # Field.root at run time; only the stubs see the clash.
    root = serializers.SerializerMethodField(  # type: ignore[assignment]
        help_text="The incident of a dependency that caused this one, or null."
    )
    grouped = serializers.SerializerMethodField(
        help_text="True while the root's notification speaks for this incident."
    )
    dependents = serializers.SerializerMethodField(
        help_text="The incidents this one caused (it is their root)."
    )

    class Meta:
        model = Incident
        fields = [
            "id",
            "title",
            "state",
            "severity",
            "team",
            "service",
            "environment",
            "subject_type",
            "subject_id",
            "subject_label",
            "reason",
            "rule",
            "rule_name",
            "dedup_key",
            "started_at",
            "fired_at",
            "acknowledged_at",
            "acknowledged_by",
            "resolved_at",
            "resolved_by",
            "suppressed_by",
            "escalation_level",
            "root",
            "caused_by_path",
            "grouped",
            "dependents",
        ]
        read_only_fields = fields

    def get_root(self, incident: Incident) -> dict[str, Any] | None:
        root = incident.root
        if root is None:
            return None
        return {"id": root.pk, "title": root.title, "state": root.state, "team": root.team.slug}

    def get_grouped(self, incident: Incident) -> bool:
        return incident.is_grouped

    def get_dependents(self, incident: Incident) -> list[dict[str, Any]]:
        return [
            {
                "id": d.pk,
                "title": d.title,
                "state": d.state,
                "team": d.team.slug,
                "service": d.service.slug if d.service else None,
                "environment": d.environment.slug if d.environment else None,
                "caused_by_path": d.caused_by_path,
            }
            for d in incident.dependents.all()
            if d.state != IncidentState.PENDING
        ]


class IncidentDetailSerializer(IncidentSerializer):
    timeline = TimelineEntrySerializer(many=True, read_only=True)

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "timeline"]
        read_only_fields = fields


class TeamOwnedSerializer(CatalogSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())

    def team_of(self, attrs: dict[str, Any]) -> Team:
        team: Team = attrs.get("team") or self.instance.team  # type: ignore[union-attr]
        return team


class SilenceSerializer(TeamOwnedSerializer):
    created_by = serializers.CharField(source="created_by_label", read_only=True)
    active = serializers.SerializerMethodField()

    class Meta:
        model = Silence
        fields = [
            "id",
            "team",
            "matchers",
            "starts_at",
            "ends_at",
            "comment",
            "created_by",
            "created_at",
            "expired_at",
            "active",
        ]
        read_only_fields = ["created_at", "expired_at"]
        immutable = ["team"]

    def get_active(self, silence: Silence) -> bool:
        return silence.is_active()

    def validate_matchers(self, value: Any) -> list[dict[str, str]]:
        try:
            return clean_matchers(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_comment(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("say why (a ticket, a reason)")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        starts = attrs.get("starts_at") or getattr(self.instance, "starts_at", None)
        starts = starts or timezone.now()
        ends = attrs.get("ends_at") or getattr(self.instance, "ends_at", None)
        if ends is not None and ends <= timezone.now():
            raise serializers.ValidationError({"ends_at": ["must be in the future"]})
        if ends is not None and ends <= starts:
            raise serializers.ValidationError({"ends_at": ["must be after starts_at"]})
        return attrs


class RuleSerializer(TeamOwnedSerializer):
    service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), required=False, allow_null=True
    )
    environment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Environment.objects.all(), required=False, allow_null=True
    )
    protected = serializers.BooleanField(source="is_protected", read_only=True)

    class Meta:
        model = Rule
        fields = [
            "id",
            "team",
            "name",
            "kind",
            "severity",
            "service",
            "environment",
            "production_only",
            "params",
            "enabled",
            "notify_affected",
            "default_key",
            "protected",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["default_key", "created_at", "updated_at"]
        immutable = ["team"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        team = self.team_of(attrs)
        service = attrs.get("service", getattr(self.instance, "service", None))
        if service is not None and service.team_id != team.pk:
            raise serializers.ValidationError({"service": [f"{service} is not {team}'s service"]})
        kind = attrs.get("kind") or self.instance.kind  # type: ignore[union-attr]
        severity = str(attrs.get("severity") or getattr(self.instance, "severity", ""))
        if "params" in attrs or "kind" in attrs:
            raw = attrs.get("params", getattr(self.instance, "params", {}))
            if not isinstance(raw, dict):
                raise serializers.ValidationError({"params": ["must be an object"]})
            try:
                attrs["params"] = KINDS[kind].clean_params(raw, severity)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.message_dict) from None
        if self.instance is not None and self.instance.is_protected:
            if attrs.get("enabled") is False:
                raise serializers.ValidationError(
                    {
                        "enabled": [
                            "a rollback always notifies the owning team; change its "
                            "severity or routes instead of turning it off"
                        ]
                    }
                )
            if "kind" in attrs and attrs["kind"] != self.instance.kind:
                raise serializers.ValidationError(
                    {"kind": ["the rollback rule stays a rollback rule"]}
                )
        return attrs

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        return {}


class ChannelSerializer(TeamOwnedSerializer):
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="Slack: the incoming webhook URL; PagerDuty: the 32-character routing key; "
        "opsgenie: the API integration key (a UUID); "
        "webhook: the HMAC signing secret; apprise: the Apprise URL (workflows://..., "
        "opsgenie://..., tgram://...). Never returned; see secret_masked (Apprise URLs "
        "shown as Apprise redacts them).",
    )
    secret_masked = serializers.CharField(source="masked_secret", read_only=True)

    class Meta:
        model = Channel
        fields = [
            "id",
            "team",
            "name",
            "kind",
            "secret",
            "secret_masked",
            "url",
            "config",
            "enabled",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        immutable = ["team", "kind"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance = self.instance
        kind = str(attrs.get("kind") or getattr(instance, "kind", ""))
        config = attrs.get("config", getattr(instance, "config", {}))
        if not isinstance(config, dict):
            raise serializers.ValidationError({"config": ["must be an object"]})
        errors = channels.check(
            kind,
            attrs.get("secret", ""),
            attrs.get("url", getattr(instance, "url", "")),
            config,
            has_secret=bool(instance is not None and instance.secret),
        )
        if errors:
            raise serializers.ValidationError(errors)
        if instance is not None and not attrs.get("secret"):
            attrs.pop("secret", None)  # leaving it out (or blank) keeps the stored one
        return attrs

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        if self._clashes(Channel, {"team": attrs["team"], "name": attrs["name"]}):
            return {"name": f"{attrs['team']} already has a channel named '{attrs['name']}'"}
        return {}


class RouteSerializer(TeamOwnedSerializer):
    channel = serializers.PrimaryKeyRelatedField(queryset=Channel.objects.all())
    group_wait_seconds = serializers.IntegerField(min_value=0, max_value=MAX_GROUP_WAIT, default=10)

    class Meta:
        model = Route
        fields = [
            "id",
            "team",
            "severity",
            "channel",
            "escalation_level",
            "group_wait_seconds",
            "enabled",
        ]
        immutable = ["team"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        team = self.team_of(attrs)
        channel = attrs.get("channel") or self.instance.channel  # type: ignore[union-attr]
        if channel.team_id != team.pk:
            raise serializers.ValidationError({"channel": [f"{channel} is not {team}'s channel"]})
        return attrs

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        lookups = {k: attrs[k] for k in ("team", "severity", "channel", "escalation_level")}
        if self._clashes(Route, lookups):
            return {
                "channel": "this team already routes that severity to that channel at that level"
            }
        return {}


class SubscriptionSerializer(TeamOwnedSerializer):
    channel = serializers.PrimaryKeyRelatedField(queryset=Channel.objects.all())
    events = serializers.ListField(
        child=serializers.CharField(),
        default=lambda: [str(n) for n in DEFAULT_NOTICES],
        help_text="Rollout events to tell: " + ", ".join(RolloutNotice.values) + ".",
    )
    service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), required=False, allow_null=True
    )
    environment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Environment.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = Subscription
        fields = [
            "id",
            "team",
            "channel",
            "events",
            "service",
            "environment",
            "production_only",
            "enabled",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        immutable = ["team"]

    def validate_events(self, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(RolloutNotice.values))
        if unknown:
            raise serializers.ValidationError(
                f"unknown: {', '.join(unknown)}; choose from {', '.join(RolloutNotice.values)}"
            )
        if not value:
            raise serializers.ValidationError("choose at least one rollout event")
        return [n for n in RolloutNotice.values if n in value]  # one each, in a fixed order

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        team = self.team_of(attrs)
        channel = attrs.get("channel") or self.instance.channel  # type: ignore[union-attr]
        if channel.team_id != team.pk:
            raise serializers.ValidationError({"channel": [f"{channel} is not {team}'s channel"]})
        service = attrs.get("service", getattr(self.instance, "service", None))
        if service is not None and service.team_id != team.pk:
            raise serializers.ValidationError({"service": [f"{service} is not {team}'s service"]})
        return attrs

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        return {}
