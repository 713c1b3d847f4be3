"""Status pages, public incidents and badges in the API (docs/status-page.md)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework import serializers

from alerts.models import Incident
from catalog.choices import Scope
from catalog.models import Environment, Service, Team
from catalog.permissions import Access
from controlplane.api import StrictSerializerMixin
from statuspage.choices import IncidentStatus
from statuspage.models import Badge, PublicIncident, StatusPage, StatusPageService


def _access(serializer: serializers.Serializer[Any]) -> Access | None:
    request = serializer.context.get("request")
    return Access.of(request) if request is not None else None


class PageServiceSerializer(StrictSerializerMixin, serializers.Serializer[StatusPageService]):
    service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.select_related("team")
    )
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    group = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class StatusPageSerializer(StrictSerializerMixin, serializers.ModelSerializer[StatusPage]):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    environment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Environment.objects.all()
    )
    services = PageServiceSerializer(many=True, required=False, write_only=True)
    public_url = serializers.SerializerMethodField()

    class Meta:
        model = StatusPage
        fields = [
            "slug", "title", "description", "team", "environment", "published",
            "show_team_names", "show_maintenance_reasons", "services", "public_url",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]

    def get_public_url(self, page: StatusPage) -> str:
        from django.urls import reverse

        path = reverse("statuspage:page", args=[page.slug])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def to_representation(self, page: StatusPage) -> dict[str, Any]:
        data = super().to_representation(page)
        data["services"] = [
            {"service": e.service.slug, "display_name": e.display_name, "group": e.group}
            for e in page.entries.select_related("service")
        ]
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        team = attrs.get("team", getattr(self.instance, "team", None))
        access = _access(self)
        may_mix = access is not None and access.is_admin
        entries = attrs.get("services")
        if entries is None and self.instance is not None and "team" in attrs:
            entries = [{"service": e.service} for e in self.instance.entries.all()]
        seen_services: set[int] = set()
        seen_names: set[str] = set()
        for n, entry in enumerate(entries or []):
            service: Service = entry["service"]
            name = (entry.get("display_name") or service.name).strip()
            if service.pk in seen_services:
                raise serializers.ValidationError(
                    {"services": f"item {n}: service '{service.slug}' is on the page twice"}
                )
            if name.lower() in seen_names:
                raise serializers.ValidationError(
                    {"services": f"item {n}: the display name '{name}' is taken on this page"}
                )
            if team is not None and service.team_id != team.pk and not may_mix:
                raise serializers.ValidationError(
                    {"services": f"item {n}: service '{service.slug}' belongs to team "
                                 f"'{service.team.slug}', not '{team.slug}'; only platform "
                                 "admins put other teams' services on a page"}
                )  # fmt: skip
            seen_services.add(service.pk)
            seen_names.add(name.lower())
            entry["display_name"] = name
        return attrs

    @transaction.atomic
    def create(self, validated: dict[str, Any]) -> StatusPage:
        entries = validated.pop("services", [])
        page = super().create(validated)
        self._set_entries(page, entries)
        return page

    @transaction.atomic
    def update(self, page: StatusPage, validated: dict[str, Any]) -> StatusPage:
        entries = validated.pop("services", None)
        page = super().update(page, validated)
        if entries is not None:
            self._set_entries(page, entries)
        return page

    @staticmethod
    def _set_entries(page: StatusPage, entries: list[dict[str, Any]]) -> None:
        """The list replaces the page's services; published incidents keep the entries of
        services still on it."""
        keep = {e["service"].pk for e in entries}
        page.entries.exclude(service_id__in=keep).delete()
        current = {e.service_id: e for e in page.entries.all()}
        # Display names are unique per page: park the kept ones first, then rename.
        for entry in current.values():
            entry.display_name = f"~{entry.pk}~"
            entry.save(update_fields=["display_name"])
        for position, item in enumerate(entries):
            row = current.get(item["service"].pk) or StatusPageService(
                page=page, service=item["service"]
            )
            row.display_name = item["display_name"]
            row.group = item.get("group", "")
            row.position = position
            row.save()


class PublicIncidentSerializer(StrictSerializerMixin, serializers.ModelSerializer[PublicIncident]):
    page = serializers.SlugRelatedField(slug_field="slug", queryset=StatusPage.objects.all())
    services = serializers.ListField(
        child=serializers.SlugField(),
        required=False,
        write_only=True,
        help_text="slugs of services on the page",
    )
    incident = serializers.PrimaryKeyRelatedField(
        queryset=Incident.objects.all(), required=False, allow_null=True,
        help_text="the internal incident this tells about (never shown publicly)",
    )  # fmt: skip

    class Meta:
        model = PublicIncident
        fields = [
            "id", "page", "title", "message", "status", "impact", "services", "incident",
            "created_at", "updated_at", "resolved_at",
        ]  # fmt: skip
        read_only_fields = ["created_at", "updated_at", "resolved_at"]

    def to_representation(self, incident: PublicIncident) -> dict[str, Any]:
        data = super().to_representation(incident)
        data["services"] = [e.service.slug for e in incident.entries.select_related("service")]
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        page: StatusPage | None = attrs.get("page", getattr(self.instance, "page", None))
        if self.instance is not None and "page" in attrs and attrs["page"] != self.instance.page:
            raise serializers.ValidationError({"page": "a published incident stays on its page"})
        if page is None:
            return attrs
        if "services" in attrs:
            entries = {e.service.slug: e for e in page.entries.select_related("service")}
            unknown = [s for s in attrs["services"] if s not in entries]
            if unknown:
                raise serializers.ValidationError(
                    {"services": f"not on page '{page.slug}': {', '.join(unknown)}"}
                )
            attrs["entries"] = [entries[s] for s in attrs.pop("services")]
        internal = attrs.get("incident")
        if internal is not None and internal.team_id != page.team_id:
            raise serializers.ValidationError(
                {"incident": f"incident {internal.pk} is not one of team '{page.team.slug}'"}
            )
        status = attrs.get("status")
        if status == IncidentStatus.RESOLVED and not getattr(self.instance, "resolved_at", None):
            attrs["resolved_at"] = timezone.now()
        elif status is not None and status != IncidentStatus.RESOLVED:
            attrs["resolved_at"] = None
        return attrs


class BadgeSerializer(StrictSerializerMixin, serializers.ModelSerializer[Badge]):
    service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.select_related("team")
    )
    environment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Environment.objects.all()
    )

    class Meta:
        model = Badge
        fields = ["id", "service", "environment", "kind", "label", "enabled", "created_at",
                  "rotated_at"]  # fmt: skip
        read_only_fields = ["created_at", "rotated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        moved = self.instance is not None and "service" in attrs
        if moved and attrs["service"] != self.instance.service:  # type: ignore[union-attr]
            raise serializers.ValidationError(
                    {"service": "a badge stays with its service; make a new badge instead"}
                )
        return attrs

    def to_representation(self, badge: Badge) -> dict[str, Any]:
        data = super().to_representation(badge)
        # The URL is the badge's only secret: shown to whoever may change the badge (the
        # view asks for it), never to other readers nor in the audit log's payloads.
        if self.context.get("reveal_url") and _may_write(self, badge):
            from django.urls import reverse

            path = reverse("statuspage:badge", args=[badge.token])
            request = self.context.get("request")
            data["url"] = request.build_absolute_uri(path) if request is not None else path
        return data


def _may_write(serializer: serializers.Serializer[Any], badge: Badge) -> bool:
    access = _access(serializer)
    if access is None:
        return False
    cache: dict[int, bool] = serializer.context["writable_teams"]
    team = badge.service.team
    if team.pk not in cache:
        cache[team.pk] = access.can(Scope.WRITE, team, badge.service)
    return cache[team.pk]
