"""Teams, people's roles in them, environments, services, instances and API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.deconstruct import deconstructible

from catalog import signals
from catalog.choices import ROLE_RANK, InstanceEvent, Lifecycle, Role, Scope, StatusSource, Tier
from controlplane import outbound
from controlplane.events import publish

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    "use lowercase letters, digits and hyphens (1-63 characters, no leading/trailing hyphen)",
)


class Team(models.Model):
    """A group of people that owns services."""

    slug = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    slack_channel = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def get_absolute_url(self) -> str:
        return reverse("dashboard:team", args=[self.slug])

    def owning_team(self) -> Team:
        return self

    def role_of(self, user: AbstractBaseUser | AnonymousUser) -> str | None:
        """The user's role in this team, or None."""
        if not user.is_authenticated:
            return None
        membership = self.memberships.filter(user_id=user.pk).first()
        return membership.role if membership else None


class Membership(models.Model):
    """A user's role in a team: viewer, deployer or owner."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        ordering = ["team__slug", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"

    def allows(self, needed: str) -> bool:
        """True when this role is at least `needed`."""
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(needed)]

    def owning_team(self) -> Team:
        return self.team

    def is_last_owner(self) -> bool:
        """True when removing or demoting this owner would leave the team without one."""
        if self.role != Role.OWNER:
            return False
        others = self.team.memberships.filter(role=Role.OWNER).exclude(pk=self.pk)
        return not others.exists()


class Environment(models.Model):
    """A place services run (staging, production, ...), ordered as a deploy moves through."""

    slug = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    order = models.PositiveSmallIntegerField(default=0)
    is_production = models.BooleanField(default=False)

    class Meta:
        ordering = ["order", "slug"]

    def __str__(self) -> str:
        return self.slug


LOG_LINK_FIELDS = ("service", "environment", "instance", "start", "end", "start_ms", "end_ms")
TRACE_LINK_FIELDS = ("service", "environment", "trace_id")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@deconstructible
class LinkTemplateValidator:
    """A URL with only the {placeholders} Signalbox knows how to fill."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = tuple(allowed)

    def __call__(self, value: str) -> None:
        unknown = sorted(set(_PLACEHOLDER.findall(value)) - set(self.allowed))
        if unknown:
            raise ValidationError(
                f"unknown placeholder {{{unknown[0]}}}; use "
                + ", ".join("{" + name + "}" for name in self.allowed)
            )
        if not value.startswith(("https://", "http://")):
            raise ValidationError("must start with https:// or http://")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LinkTemplateValidator) and other.allowed == self.allowed

    def __hash__(self) -> int:
        return hash(self.allowed)


validate_log_link_template = LinkTemplateValidator(LOG_LINK_FIELDS)
validate_trace_link_template = LinkTemplateValidator(TRACE_LINK_FIELDS)


def fill_link_template(template: str, **values: str) -> str:
    """`template` with each {name} replaced by its URL-quoted value ("" when unknown)."""
    return _PLACEHOLDER.sub(lambda m: quote(values.get(m.group(1), ""), safe=""), template)


def guarded_url(url: str) -> None:
    """Signalbox will call this URL: refuse, when saved, an address the outbound guard never
    allows (a name that does not resolve yet is checked again at every call)."""
    reason = outbound.refusal(url) if url else ""
    if reason:
        raise ValidationError(reason)


MIN_STATUS_INTERVAL = 10
MAX_STATUS_INTERVAL = 3600


class ExternalDependency(models.Model):
    """A service we rely on but do not run (a payment provider, S3), with its status page."""

    slug = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status_page_url = models.URLField(
        blank=True,
        validators=[guarded_url],
        help_text="The vendor's Statuspage base URL: <base>/api/v2/summary.json is polled",
    )
    status_source = models.CharField(
        max_length=16, choices=StatusSource.choices, default=StatusSource.NONE
    )
    status_components = models.JSONField(
        default=list,
        blank=True,
        help_text="The vendor's components that matter to us (names or ids); empty = the "
        "page's overall indicator",
    )
    probe_url = models.URLField(
        blank=True,
        validators=[guarded_url],
        help_text="Our own probe of the dependency: an HTTP GET of this URL",
    )
    probe_expected_status = models.PositiveSmallIntegerField(
        default=200, validators=[MinValueValidator(100), MaxValueValidator(599)]
    )
    status_interval_seconds = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(MIN_STATUS_INTERVAL), MaxValueValidator(MAX_STATUS_INTERVAL)],
        help_text="How often the status page is fetched and the probe is run",
    )

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "external dependencies"

    def __str__(self) -> str:
        return self.slug

    def get_absolute_url(self) -> str:
        return reverse("dashboard:external-dependency", args=[self.slug])

    @property
    def is_watched(self) -> bool:
        return self.status_source != StatusSource.NONE


class Service(models.Model):
    """A deployable unit owned by one team."""

    slug = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="services")
    description = models.TextField(blank=True)
    tier = models.PositiveSmallIntegerField(choices=Tier.choices, default=Tier.STANDARD)
    repository_url = models.URLField(blank=True)
    runbook_url = models.URLField(blank=True)
    # Where this service's logs and traces are read (Kibana, Loki, Cloud Logging; Jaeger,
    # Tempo): URLs with {placeholders} filled on incidents, instances and rollouts.
    log_link_template = models.CharField(
        max_length=2000, blank=True, validators=[validate_log_link_template]
    )
    trace_link_template = models.CharField(
        max_length=2000, blank=True, validators=[validate_trace_link_template]
    )
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="dependents"
    )
    external_dependencies = models.ManyToManyField(
        ExternalDependency, blank=True, related_name="dependents"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def get_absolute_url(self) -> str:
        return reverse("dashboard:service", args=[self.slug])

    def owning_team(self) -> Team:
        return self.team

    def log_link(
        self,
        *,
        environment: str = "",
        instance: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> str:
        """This service's logs for the range (ISO 8601, UTC), or "" without a template."""
        if not self.log_link_template:
            return ""
        return fill_link_template(
            self.log_link_template,
            service=self.slug,
            environment=environment,
            instance=instance,
            start=start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if start else "",
            end=end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if end else "",
            start_ms=str(int(start.timestamp() * 1000)) if start else "",
            end_ms=str(int(end.timestamp() * 1000)) if end else "",
        )

    def trace_link(self, trace_id: str, *, environment: str = "") -> str:
        """One trace in the external trace UI, or "" without a template."""
        if not self.trace_link_template:
            return ""
        return fill_link_template(
            self.trace_link_template,
            service=self.slug,
            environment=environment,
            trace_id=trace_id,
        )


class Instance(models.Model):
    """One running copy of a service in an environment, reachable at host:port."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="instances")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="instances")
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    version = models.CharField(max_length=128, blank=True)
    zone = models.CharField(max_length=63, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    lifecycle = models.CharField(
        max_length=24, choices=Lifecycle.choices, default=Lifecycle.REGISTERED
    )
    registered_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    heartbeat_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Set by self-registering instances: they re-register this often, "
        "and become stale after three missed beats.",
    )

    class Meta:
        ordering = ["service__slug", "environment__order", "host", "port"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment", "host", "port"],
                name="instance_unique_address",
            )
        ]
        indexes = [
            models.Index(fields=["environment", "lifecycle"], name="instance_env_lifecycle"),
            models.Index(fields=["lifecycle", "last_seen_at"], name="instance_lifecycle_seen"),
        ]

    def __str__(self) -> str:
        return f"{self.service.slug}@{self.address}"

    def get_absolute_url(self) -> str:
        return reverse("catalog:instance", args=[self.pk])

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def owning_team(self) -> Team:
        return self.service.team

    @classmethod
    def register(
        cls,
        *,
        service: Service,
        environment: Environment,
        host: str,
        port: int,
        reported: dict[str, Any],
        actor: Any = None,
    ) -> tuple[Instance, bool]:
        """Create or refresh the instance at (service, environment, host, port).

        Idempotent and safe when two registrations race (the row is locked). `reported`
        holds any of version, zone, labels and heartbeat_seconds; what it leaves out stays
        as it was. A stale or deregistered instance that registers again comes back as
        registered. Only real changes are published: a plain heartbeat only moves
        last_seen_at, so the timeline is not flooded by instances checking in.
        """
        now = timezone.now()
        with transaction.atomic():
            instance, created = cls.objects.select_for_update().get_or_create(
                service=service,
                environment=environment,
                host=host,
                port=port,
                defaults={**reported, "registered_at": now, "last_seen_at": now},
            )
            if created:
                publish(
                    InstanceEvent.REGISTERED,
                    actor=actor,
                    subject=instance,
                    message=f"{instance} registered (version {instance.version or 'unknown'})",
                    payload={"version": instance.version, "zone": instance.zone},
                )
            else:
                instance._refresh_registration(reported, now, actor)
            signals.send_on_commit(signals.instance_registered, instance)
        return instance, created

    def _refresh_registration(self, reported: dict[str, Any], now: Any, actor: Any) -> None:
        changes = {
            name: [getattr(self, name), value]
            for name, value in reported.items()
            if getattr(self, name) != value
        }
        revived = self.lifecycle in (Lifecycle.STALE, Lifecycle.DEREGISTERED)
        if revived:
            changes["lifecycle"] = [self.lifecycle, Lifecycle.REGISTERED]
            if self.lifecycle == Lifecycle.DEREGISTERED:
                self.registered_at = now
        for name, (_, value) in changes.items():
            setattr(self, name, value)
        self.last_seen_at = now
        self.save(update_fields=[*changes, "last_seen_at", "registered_at"])
        if revived:
            publish(
                InstanceEvent.REGISTERED,
                actor=actor,
                subject=self,
                message=f"{self} registered again",
                payload={"changes": changes},
            )
        elif changes:
            publish(
                InstanceEvent.UPDATED,
                actor=actor,
                subject=self,
                message=f"{self} reported " + ", ".join(sorted(changes)),
                payload={"changes": changes},
            )

    def deregister(self, actor: Any = None) -> bool:
        """Mark this instance gone; False when it already was (deregistering is idempotent)."""
        if self.lifecycle == Lifecycle.DEREGISTERED:
            return False
        previous = self.lifecycle
        with transaction.atomic():
            self.lifecycle = Lifecycle.DEREGISTERED
            self.last_seen_at = timezone.now()
            self.save(update_fields=["lifecycle", "last_seen_at"])
            publish(
                InstanceEvent.DEREGISTERED,
                actor=actor,
                subject=self,
                message=f"{self} deregistered",
                payload={"changes": {"lifecycle": [previous, Lifecycle.DEREGISTERED]}},
            )
            signals.send_on_commit(signals.instance_deregistered, self)
        return True


TOKEN_PREFIX = "sbx"  # noqa: S105 (a public marker, like GitHub's ghp_)


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )


class ApiToken(models.Model):
    """A team's API credential with scopes; only its SHA-256 is stored."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="tokens")
    service = models.ForeignKey(
        Service,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="tokens",
        help_text="When set, the token may only act for this service.",
    )
    name = models.CharField(max_length=100)
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices))
    key_id = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"],
                condition=Q(revoked_at__isnull=True),
                name="apitoken_unique_active_name",
            )
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    @staticmethod
    def hash_secret(secret: str) -> str:
        # The secret is 256 random bits, so a fast hash is enough (as GitHub and PyPI do).
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(
        cls,
        *,
        team: Team,
        name: str,
        scopes: list[str],
        service: Service | None = None,
        created_by: Any = None,
        expires_at: datetime | None = None,
    ) -> tuple[ApiToken, str]:
        """Create a token; returns it and the plain value, which is never stored or shown again."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        plain = f"{TOKEN_PREFIX}_{key_id}_{secret}"
        token = cls.objects.create(
            team=team,
            service=service,
            name=name,
            scopes=sorted(set(scopes)),
            key_id=key_id,
            key_hash=cls.hash_secret(plain),
            created_by=created_by,
            expires_at=expires_at,
        )
        return token, plain

    @classmethod
    def find(cls, plain: str) -> ApiToken | None:
        """The active token for a presented value, or None (constant-time comparison)."""
        parts = plain.split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            return None
        token = (
            cls.objects.active().select_related("team", "service").filter(key_id=parts[1]).first()
        )
        if token is None or not secrets.compare_digest(token.key_hash, cls.hash_secret(plain)):
            return None
        return token

    def owning_team(self) -> Team:
        return self.team

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])

    def touch(self) -> None:
        """Record use, at most once a minute per token to keep writes off the hot path."""
        now = timezone.now()
        if self.last_used_at is None or (now - self.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def pending(self) -> InvitationQuerySet:
        return self.filter(
            accepted_at__isnull=True, cancelled_at__isnull=True, expires_at__gt=timezone.now()
        )


class Invitation(models.Model):
    """An owner's invitation of an email address into a team with a role.

    The link's token is 256 random bits; only its SHA-256 is stored, so a copy of the
    database cannot be used to join a team. It works once, until it expires."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        # Made on the dashboard first; moved here (state only) so the API can reach it,
        # its table and rows kept (catalog 0005, dashboard 0002).
        db_table = "dashboard_invitation"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "email"],
                condition=Q(accepted_at__isnull=True, cancelled_at__isnull=True),
                name="invitation_one_open_per_team_email",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.team.slug} as {self.role}"

    def owning_team(self) -> Team:
        return self.team

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    @staticmethod
    def lifetime() -> timedelta:
        return timedelta(hours=settings.SIGNALBOX_INVITATION_HOURS)

    @property
    def is_pending(self) -> bool:
        return (
            self.accepted_at is None
            and self.cancelled_at is None
            and self.expires_at > timezone.now()
        )
