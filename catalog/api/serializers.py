"""Catalog API shapes: strict input, slugs for references, duplicates answered with 409."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions, serializers, status
from rest_framework.validators import UniqueValidator

from catalog.choices import Role, Scope, StatusSource
from catalog.models import (
    TOKEN_PREFIX,
    ApiToken,
    Environment,
    ExternalDependency,
    Instance,
    Invitation,
    Membership,
    Service,
    Team,
)
from controlplane import outbound
from controlplane.api import StrictSerializerMixin

MAX_LABELS = 64


def reference(queryset: Any, noun: str, slug_field: str = "slug", **kwargs: Any) -> Any:
    """A reference by slug whose errors name what is missing: "no environment 'moon'"."""
    messages: dict[str, Any] = {
        "does_not_exist": f"no {noun} '{{value}}' in the catalog",
        "invalid": f"must be a {noun} {slug_field} (a string)",
    }
    return serializers.SlugRelatedField(
        slug_field=slug_field, queryset=queryset, error_messages=messages, **kwargs
    )


class Duplicate(exceptions.ValidationError):
    """409 naming the field that clashes with an existing row (a ValidationError so the
    error shape lists it under `fields`, raised outside `is_valid()` so it stays a 409)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class CatalogSerializer(StrictSerializerMixin, serializers.ModelSerializer[Any]):
    """Strict model serializer: `Meta.immutable` fields are set once; duplicates answer 409.

    Subclasses list what must be unique in `duplicate_of(attrs)`; it runs in save(), after
    validation, so a duplicate is a 409 (the request was fine, the state clashes) rather than
    a 400 mixed in with field errors.
    """

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        for field in fields.values():
            field.validators = [v for v in field.validators if not isinstance(v, UniqueValidator)]
        return fields

    def get_validators(self) -> list[Any]:
        return []  # uniqueness is answered with 409 by duplicate_of(), not a 400 here

    def to_internal_value(self, data: Any) -> Any:
        immutable = getattr(self.Meta, "immutable", ())
        if self.instance is not None and isinstance(data, Mapping) and immutable:
            current = self.to_representation(self.instance)
            changed = [n for n in immutable if n in data and data[n] != current.get(n)]
            if changed:
                reason = "cannot be changed once created; create a new one instead"
                raise serializers.ValidationError({n: [reason] for n in changed})
        return super().to_internal_value(data)

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        """{field: reason} for each unique value `attrs` would clash on (override)."""
        return {}

    def _merged(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None:
            return attrs
        names = {f.name for f in self.instance._meta.concrete_fields}
        return {n: getattr(self.instance, n) for n in names} | attrs

    def _clashes(self, model: type[Any], lookups: dict[str, Any]) -> bool:
        rows = model.objects.filter(**lookups)
        if self.instance is not None:
            rows = rows.exclude(pk=self.instance.pk)
        return bool(rows.exists())

    def save(self, **kwargs: Any) -> Any:
        clashes = self.duplicate_of(self._merged({**self.validated_data, **kwargs}))
        if clashes:
            raise Duplicate({name: [reason] for name, reason in clashes.items()})
        try:
            with transaction.atomic():
                return super().save(**kwargs)
        except IntegrityError as exc:
            # Lost a race with a concurrent request creating the same thing.
            reason = f"conflicts with a concurrent change: {exc}"
            raise Duplicate({"non_field_errors": [reason]}) from exc


class TeamSerializer(CatalogSerializer):
    class Meta:
        model = Team
        fields = ["slug", "name", "description", "slack_channel", "created_at"]
        read_only_fields = ["created_at"]
        immutable = ["slug"]

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        if self._clashes(Team, {"slug": attrs["slug"]}):
            return {"slug": f"a team with slug '{attrs['slug']}' already exists"}
        return {}


class MembershipSerializer(CatalogSerializer):
    team = reference(Team.objects.all(), "team")
    user = reference(get_user_model().objects.all(), "user", slug_field="username")

    class Meta:
        model = Membership
        fields = ["id", "team", "user", "role"]
        immutable = ["team", "user"]

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        if self._clashes(Membership, {"team": attrs["team"], "user": attrs["user"]}):
            return {"user": f"{attrs['user']} is already a member of {attrs['team']}"}
        return {}


class EnvironmentSerializer(CatalogSerializer):
    class Meta:
        model = Environment
        fields = ["slug", "name", "order", "is_production"]
        immutable = ["slug"]

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        if self._clashes(Environment, {"slug": attrs["slug"]}):
            return {"slug": f"an environment with slug '{attrs['slug']}' already exists"}
        return {}


MAX_STATUS_COMPONENTS = 50
MAX_COMPONENT_CHARS = 200


class ExternalDependencySerializer(CatalogSerializer):
    status_source = serializers.ChoiceField(
        choices=StatusSource.choices,
        required=False,
        error_messages={
            "invalid_choice": f"'{{input}}' is not a status source; use one of "
            f"{', '.join(StatusSource.values)}"
        },
    )
    status_components = serializers.ListField(
        child=serializers.CharField(max_length=MAX_COMPONENT_CHARS, allow_blank=False),
        max_length=MAX_STATUS_COMPONENTS,
        required=False,
        help_text="The vendor's component names or ids that matter to us; empty = the "
        "page's overall indicator",
    )
    status = serializers.SerializerMethodField(
        help_text="The watched state: state, source, fetched_at, components, incidents, "
        "maintenances, our_probe, ahead_of_vendor (null when not watched yet)"
    )

    class Meta:
        model = ExternalDependency
        fields = [
            "slug",
            "name",
            "description",
            "status_page_url",
            "status_source",
            "status_components",
            "probe_url",
            "probe_expected_status",
            "status_interval_seconds",
            "status",
        ]
        immutable = ["slug"]

    def validate_status_components(self, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value]
        seen = {v.lower() for v in cleaned}
        if len(seen) != len(cleaned):
            raise serializers.ValidationError("lists a component twice")
        return cleaned

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        merged = self._merged(attrs)
        source = merged.get("status_source") or StatusSource.NONE
        if source == StatusSource.STATUSPAGE and not merged.get("status_page_url"):
            raise serializers.ValidationError(
                {"status_page_url": ["a statuspage source needs the page's base URL"]}
            )
        if source == StatusSource.PROBE and not merged.get("probe_url"):
            raise serializers.ValidationError(
                {"probe_url": ["a probe source needs the URL to probe"]}
            )
        return attrs

    def get_status(self, obj: ExternalDependency) -> dict[str, Any] | None:
        # The watched state is health's row (ExternalDependency.vendor_status); the circuits
        # protecting the dependency come through their own relation. Neither app is
        # imported here: the catalog sits below both.
        record = getattr(obj, "vendor_status", None)
        if record is None:
            return None
        open_circuits = sum(1 for c in obj.protected_by_circuits.all() if c.is_rejecting)
        return dict(record.as_api(open_circuits=open_circuits))

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        if self._clashes(ExternalDependency, {"slug": attrs["slug"]}):
            return {"slug": f"an external dependency with slug '{attrs['slug']}' already exists"}
        return {}


class ServiceSerializer(CatalogSerializer):
    team = reference(Team.objects.all(), "team")
    depends_on = reference(Service.objects.all(), "service", many=True, required=False)
    external_dependencies = reference(
        ExternalDependency.objects.all(), "external dependency", many=True, required=False
    )

    class Meta:
        model = Service
        fields = [
            "slug",
            "name",
            "team",
            "description",
            "tier",
            "repository_url",
            "runbook_url",
            "log_link_template",
            "trace_link_template",
            "depends_on",
            "external_dependencies",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        immutable = ["slug"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        slug = attrs.get("slug") or (self.instance.slug if self.instance else None)
        if any(s.slug == slug for s in attrs.get("depends_on", [])):
            raise serializers.ValidationError({"depends_on": ["a service cannot depend on itself"]})
        return attrs

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        if self._clashes(Service, {"slug": attrs["slug"]}):
            return {"slug": f"a service with slug '{attrs['slug']}' already exists"}
        return {}


def validate_host(value: str) -> None:
    """Probes and scrapes will call this host: refuse, now, an address they never may.

    Names are not resolved here (they resolve inside the instance's network, and
    registration is a hot path); the guard checks what they resolve to at every call."""
    try:
        outbound.check_host(value)
    except outbound.Refused as exc:
        raise serializers.ValidationError(str(exc)) from None


def validate_labels(value: Any) -> None:
    """Labels are a flat object of short strings, like Kubernetes labels."""
    if not isinstance(value, dict):
        raise serializers.ValidationError("must be a JSON object of string keys and values")
    if len(value) > MAX_LABELS:
        raise serializers.ValidationError(f"at most {MAX_LABELS} labels")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > 63 or len(item) > 253:
            raise serializers.ValidationError(
                f"label '{key}' must be a string (keys up to 63 characters, values up to 253)"
            )


class InstanceSerializer(CatalogSerializer):
    service = reference(Service.objects.all(), "service")
    environment = reference(Environment.objects.all(), "environment")
    labels = serializers.JSONField(required=False, validators=[validate_labels])
    heartbeat_seconds = serializers.IntegerField(
        required=False, allow_null=True, min_value=5, max_value=86400
    )

    class Meta:
        model = Instance
        extra_kwargs = {"host": {"validators": [validate_host]}}
        fields = [
            "id",
            "service",
            "environment",
            "host",
            "port",
            "address",
            "version",
            "zone",
            "labels",
            "lifecycle",
            "registered_at",
            "last_seen_at",
            "heartbeat_seconds",
        ]
        read_only_fields = ["address", "registered_at", "last_seen_at"]
        immutable = ["service", "environment", "host", "port"]

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        key = {k: attrs[k] for k in ("service", "environment", "host", "port")}
        if self._clashes(Instance, key):
            return {
                "port": f"{attrs['service']} already has an instance at "
                f"{attrs['host']}:{attrs['port']} in {attrs['environment']}"
            }
        return {}


class InstanceAddressSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    """The key of a self-registered instance: (service, environment, host, port)."""

    service = reference(Service.objects.all(), "service")
    environment = reference(Environment.objects.all(), "environment")
    host = serializers.CharField(max_length=253, validators=[validate_host])
    port = serializers.IntegerField(min_value=1, max_value=65535)


class RegistrationSerializer(InstanceAddressSerializer):
    """What an instance reports about itself; fields it leaves out keep their values."""

    version = serializers.CharField(max_length=128, required=False, allow_blank=True)
    zone = serializers.CharField(max_length=63, required=False, allow_blank=True)
    labels = serializers.JSONField(required=False, validators=[validate_labels])
    heartbeat_seconds = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=5,
        max_value=86400,
        help_text="How often it will register again; stale after three missed beats.",
    )

    def reported(self) -> dict[str, Any]:
        keys = ("version", "zone", "labels", "heartbeat_seconds")
        return {k: self.validated_data[k] for k in keys if k in self.validated_data}


class TokenSerializer(serializers.ModelSerializer[ApiToken]):
    """A token as listed: everything but its value, which is never stored."""

    team: serializers.SlugRelatedField[Team] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    service: serializers.SlugRelatedField[Service] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    hint = serializers.SerializerMethodField(
        help_text="The token's public prefix, to recognise it."
    )
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "team",
            "service",
            "name",
            "scopes",
            "hint",
            "active",
            "created_by",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]
        read_only_fields = fields

    def get_hint(self, token: ApiToken) -> str:
        return f"{TOKEN_PREFIX}_{token.key_id}_…"


class IssuedTokenSerializer(TokenSerializer):
    """The answer to issuing a token: the only time its value is shown."""

    token = serializers.SerializerMethodField(
        help_text="The token itself. Shown once: store it now, it cannot be retrieved again."
    )

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
        read_only_fields = fields

    def get_token(self, token: ApiToken) -> str:
        return str(self.context.get("plain", ""))


class TokenIssueSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    """What to issue: for which team (and optionally one service), with which scopes."""

    team = reference(Team.objects.all(), "team")
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices), allow_empty=False
    )
    service = reference(Service.objects.all(), "service", required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("must be in the future")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        service = attrs.get("service")
        if service is not None and service.team_id != attrs["team"].pk:
            reason = f"{service.slug} belongs to team {service.team.slug}, not {attrs['team'].slug}"
            raise serializers.ValidationError({"service": [reason]})
        return attrs

    def issue(self, created_by: Any) -> tuple[ApiToken, str]:
        data = self.validated_data
        if ApiToken.objects.active().filter(team=data["team"], name=data["name"]).exists():
            reason = f"team {data['team'].slug} already has an active token named '{data['name']}'"
            raise Duplicate({"name": [reason]})
        token, plain = ApiToken.issue(
            team=data["team"],
            name=data["name"],
            scopes=data["scopes"],
            service=data.get("service"),
            created_by=created_by,
            expires_at=data.get("expires_at"),
        )
        return token, plain


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    """An invitation as listed: who was asked into which team as what, and where it stands
    (the link's token is never stored, only its hash, and never shown)."""

    team: serializers.SlugRelatedField[Team] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    invited_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    state = serializers.SerializerMethodField(help_text="pending, accepted, cancelled or expired.")

    class Meta:
        model = Invitation
        fields = [
            "id", "team", "email", "role", "state", "invited_by", "created_at", "expires_at",
            "accepted_at", "cancelled_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_state(self, invitation: Invitation) -> str:
        if invitation.accepted_at is not None:
            return "accepted"
        if invitation.cancelled_at is not None:
            return "cancelled"
        return "pending" if invitation.is_pending else "expired"


class InvitationCreateSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    """Whom to invite: an email address into a team, with a role (viewer by default)."""

    team = reference(Team.objects.all(), "team")
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)
