"""The team page's settings: members and invitations, API tokens, notification channels and
routes. Forms parse what a person typed; the API's serializers and service functions decide
what is valid and save it (catalog.members, catalog.tokens, controlplane.changes), so the
page and the API accept and refuse the same things, with the same audited events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS

from alerts.api.serializers import ChannelSerializer
from alerts.choices import ChannelKind, Severity
from alerts.models import Channel, Route
from catalog.choices import Role, Scope
from catalog.models import ApiToken, Invitation, Membership, Team
from catalog.permissions import Access

# How many tokens the page lists (active first, newest first); the API lists all.
TOKEN_ROWS = 200
MAX_TOKEN_DAYS = 3650


class InviteForm(forms.Form):
    email = forms.EmailField(
        max_length=254,
        help_text="They get a link to join; it works once and expires.",
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What uses it, e.g. checkout-prod or ci-deploys.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "tick at least one scope: what may this token do?"},
    )
    service = forms.ChoiceField(
        required=False,
        help_text="Optional: the token may then only act for this service.",
    )
    expires_in_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_TOKEN_DAYS,
        label="Expires in (days)",
        help_text="Empty: never expires.",
    )

    def __init__(self, *args: Any, services: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["service"].choices = [("", "any of the team's services"), *services]  # type: ignore[attr-defined]


def channel_kinds() -> list[tuple[str, str]]:
    """The kinds the Channel model declares: a kind added there shows up here by itself."""
    return [(str(v), str(label)) for v, label in Channel._meta.get_field("kind").choices or []]


_SECRET_HELP = ChannelSerializer().fields["secret"].help_text


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    kind = forms.ChoiceField(choices=channel_kinds)
    secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=f"{_SECRET_HELP} Never shown again.",
    )
    url = forms.CharField(
        required=False,
        max_length=500,
        label="URL",
        help_text="Webhook: where to POST; PagerDuty: the Events API URL (empty: PagerDuty's); "
        "Opsgenie: empty (the region's API).",
        widget=forms.URLInput(attrs={"autocomplete": "off"}),
    )
    to = forms.CharField(
        required=False,
        max_length=2000,
        label="Send to",
        help_text="Email: addresses separated by commas.",
    )
    region = forms.ChoiceField(
        required=False,
        choices=[("", "US (api.opsgenie.com)"), ("eu", "EU (api.eu.opsgenie.com)")],
        label="Opsgenie region",
        help_text="Opsgenie: where your account lives.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, channel: Channel | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.channel = channel
        if channel is not None:
            # A channel keeps its kind (the API refuses to change it): shown, not asked.
            del self.fields["kind"]
            self.fields["secret"].help_text = (
                f"Stored: {channel.masked_secret}. Leave empty to keep it."
                if channel.secret
                else "None stored. " + str(self.fields["secret"].help_text)
            )

    def api_data(self, team: Team) -> dict[str, Any]:
        """The API's request body for this form (ChannelSerializer's fields)."""
        data = self.cleaned_data
        addresses = [a.strip() for a in data["to"].split(",") if a.strip()]
        body: dict[str, Any] = {
            "name": data["name"],
            "url": data["url"],
            "config": {"to": addresses} if addresses else {},
            "enabled": data["enabled"],
        }
        kind = self.channel.kind if self.channel is not None else data["kind"]
        if kind == ChannelKind.OPSGENIE and data.get("region"):
            body["config"]["region"] = data["region"]
        if self.channel is None:
            body |= {"team": team.slug, "kind": data["kind"], "secret": data["secret"]}
        elif data["secret"]:
            body["secret"] = data["secret"]
        return body


# Where the API's field names land on the channel form.
CHANNEL_FIELDS = {
    "config.to": "to", "config.region": "region", "config": "to", "team": NON_FIELD_ERRORS,
}  # fmt: skip


class RouteForm(forms.Form):
    severity = forms.ChoiceField(choices=Severity.choices)
    channel = forms.ChoiceField()
    escalation_level = forms.IntegerField(
        min_value=0,
        max_value=9,
        initial=0,
        help_text="0 is told first; 1 when a page stays unacknowledged past the escalation "
        "delay; and so on.",
    )
    group_wait_seconds = forms.IntegerField(
        min_value=0,
        max_value=3600,
        initial=10,
        label="Group wait (seconds)",
        help_text="Wait this long for more incidents of the same service, then send one message.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, channels: list[Channel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["channel"].choices = [(str(c.pk), c.name) for c in channels]  # type: ignore[attr-defined]

    def api_data(self, team: Team) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "team": team.slug,
            "severity": data["severity"],
            "channel": int(data["channel"]),
            "escalation_level": data["escalation_level"],
            "group_wait_seconds": data["group_wait_seconds"],
            "enabled": data["enabled"],
        }


def flat_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """A serializer's (possibly nested) errors as {dotted field: [reasons]}."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            out.update(flat_errors(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(errors, list) and all(not isinstance(e, (Mapping, list)) for e in errors):
        out.setdefault(prefix or NON_FIELD_ERRORS, []).extend(str(e) for e in errors)
    elif isinstance(errors, list):
        for index, value in enumerate(errors):
            out.update(flat_errors(value, f"{prefix}.{index}"))
    else:
        out[prefix or NON_FIELD_ERRORS] = [str(errors)]
    return out


def errors_onto(form: forms.Form, errors: Any, renamed: Mapping[str, str] | None = None) -> None:
    """Put the API's reasons next to the form's fields they are about (else atop the form)."""
    renamed = renamed or {}
    for field, reasons in flat_errors(errors).items():
        name = renamed.get(field, field)
        target = name if name in form.fields else None
        form.add_error(target, " ".join(reasons))


def settings_context(
    team: Team, access: Access, bound: Mapping[Any, Any] | None = None
) -> dict[str, Any]:
    """The team page's settings sections. Everyone signed in sees members, channels
    (secrets masked) and routes; owners (and platform admins) get the forms, the pending
    invitations and the tokens, as the API lets only them change or list those.

    `bound` holds forms a failed POST filled in (with their errors), by the name used here:
    invite_form, token_form, channel_form, route_form, and ("member"|"channel"|"route", pk)
    for a row's own form."""
    bound = bound or {}
    can_manage = access.can(Scope.WRITE, team)
    members = list(
        Membership.objects.filter(team=team).select_related("user").order_by("user__username")
    )
    channels = list(Channel.objects.filter(team=team).order_by("name"))
    routes = list(
        Route.objects.filter(team=team)
        .select_related("channel")
        .order_by("severity", "escalation_level", "id")
    )
    context: dict[str, Any] = {
        "can_manage": can_manage,
        "members": members,
        "owner_count": sum(1 for m in members if m.role == Role.OWNER),
        "channels": channels,
        "routes": routes,
    }
    if not can_manage:
        return context
    services = [(s.slug, s.slug) for s in team.services.order_by("slug").only("slug")]
    context |= {
        "member_rows": [(m, bound.get(("member", m.pk)) or _role_form(m)) for m in members],
        "invite_form": bound.get("invite_form") or InviteForm(prefix="invite"),
        "invitations": list(
            Invitation.objects.pending().filter(team=team).select_related("invited_by")
        ),
        "tokens": list(
            ApiToken.objects.active()
            .filter(team=team)
            .select_related("service", "created_by")
            .order_by("-created_at")[:TOKEN_ROWS]
        ),
        "token_form": bound.get("token_form") or TokenForm(prefix="token", services=services),
        "channel_form": bound.get("channel_form") or ChannelForm(prefix="channel"),
        "channel_rows": [
            (c, bound.get(("channel", c.pk)) or _channel_edit_form(c)) for c in channels
        ],
        "route_form": bound.get("route_form") or RouteForm(prefix="route", channels=channels),
        "route_rows": [
            (r, bound.get(("route", r.pk)) or _route_edit_form(r, channels)) for r in routes
        ],
    }
    return context


def _channel_edit_form(channel: Channel) -> ChannelForm:
    to = channel.config.get("to") if isinstance(channel.config, dict) else None
    return ChannelForm(
        prefix=f"c{channel.pk}",
        channel=channel,
        initial={
            "name": channel.name,
            "url": channel.url,
            "to": ", ".join(to) if isinstance(to, list) else "",
            "region": channel.config.get("region", "") if isinstance(channel.config, dict) else "",
            "enabled": channel.enabled,
        },
    )


def _route_edit_form(route: Route, channels: list[Channel]) -> RouteForm:
    return RouteForm(
        prefix=f"r{route.pk}",
        channels=channels,
        initial={
            "severity": route.severity,
            "channel": str(route.channel_id),
            "escalation_level": route.escalation_level,
            "group_wait_seconds": route.group_wait_seconds,
            "enabled": route.enabled,
        },
    )


def _role_form(membership: Membership) -> RoleForm:
    return RoleForm(initial={"role": membership.role}, prefix=f"m{membership.pk}")
