"""Alerts dashboard pages (incidents, silences, team alert settings) and the Slack endpoints."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from alerts import channels, slack_bot
from alerts.api import serializers as s
from alerts.choices import (
    CHANNEL_EVENTS,
    MATCHER_LABELS,
    ROUTE_EVENTS,
    RULE_EVENTS,
    ChannelKind,
    IncidentState,
    MatchOp,
    Severity,
)
from alerts.incidents import acknowledge, resolve
from alerts.models import Channel, Incident, Route, Rule, Silence
from alerts.silences import clean_matchers, expire_silence, open_silence
from catalog.choices import Scope
from catalog.models import Team
from catalog.permissions import Access
from controlplane import changes
from debugging import windows as debugging_windows

STATE_TABS = [
    ("open", "Open"),
    (IncidentState.FIRING, "Firing"),
    (IncidentState.ACKNOWLEDGED, "Acknowledged"),
    (IncidentState.RESOLVED, "Resolved"),
]


# An admin owns every team: 400 links (33 KB of every alerts page) at 10,000 services
# (bench.dashboard). Past this many the rest are reached from each team's page.
NAV_TEAMS = 10


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    """Every alerts page shows links to the settings of teams the person owns (the first
    NAV_TEAMS, and how many more)."""
    teams = Access.of(request).teams_with(Scope.WRITE)
    return {
        "settings_teams": teams[:NAV_TEAMS],
        "settings_more": max(len(teams) - NAV_TEAMS, 0),
        **extra,
    }


@login_required
def incidents(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "open")
    queryset = Incident.objects.visible().select_related("team", "service", "environment", "root")
    if state == "open":
        queryset = queryset.filter(state__in=[IncidentState.FIRING, IncidentState.ACKNOWLEDGED])
    elif state in IncidentState.values:
        queryset = queryset.filter(state=state)
    team = request.GET.get("team", "").strip()
    if team:
        queryset = queryset.filter(team__slug=team)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    access = Access.of(request)
    # Rows are the same for every viewer (live pushes render each row once for all), so
    # the page, not the row, says whose buttons show; acting still checks on the server.
    actionable = sorted(t.slug for t in access.teams_with(Scope.DEPLOY))
    return render(
        request,
        "alerts/incidents.html",
        _context(
            request,
            page=page,
            state=state,
            states=STATE_TABS,
            filters={"team": team},
            actionable_all=access.is_admin,
            actionable_teams=[] if access.is_admin else actionable,
        ),
    )


@login_required
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    incident = get_object_or_404(
        Incident.objects.visible().select_related(
            "team", "service", "environment", "rule", "root", "root__team"
        ),
        pk=pk,
    )
    access = Access.of(request)
    return render(
        request,
        "alerts/incident.html",
        _context(
            request,
            incident=incident,
            timeline=incident.timeline.all(),
            notifications=incident.notifications.select_related("channel").order_by("id"),
            can_act=access.can(Scope.DEPLOY, incident.team, incident.service),
            dependents=incident.dependents.visible()
            .select_related("team", "service", "environment")
            .order_by("fired_at", "id"),
            debug_windows=debugging_windows.for_incident(incident.pk),
        ),
    )


def _respond(request: HttpRequest, pk: int, act: Any, verb: str) -> HttpResponse:
    incident = get_object_or_404(
        Incident.objects.visible().select_related("team", "service"), pk=pk
    )
    access = Access.of(request)
    if not access.can(Scope.DEPLOY, incident.team, incident.service):
        return HttpResponseForbidden(
            f"You need the deployer or owner role in {incident.team.slug} to {verb} this."
        )
    if act(incident.pk, access) is None:
        messages.warning(request, f"#{incident.pk} is {incident.state}; nothing to {verb}.")
    incident = Incident.objects.select_related("team", "service", "environment", "root").get(pk=pk)
    if request.headers.get("HX-Request"):
        return render(request, "alerts/partials/incident_row.html", {"incident": incident})
    return redirect(incident.get_absolute_url())


@login_required
@require_POST
def incident_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    return _respond(request, pk, acknowledge, "acknowledge")


@login_required
@require_POST
def incident_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    return _respond(request, pk, resolve, "resolve")


class SilenceForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="slug")
    matchers = forms.CharField(
        required=False,
        help_text="One per line: label=value, label!=value, label=~regex or label!~regex "
        f"(labels: {', '.join(MATCHER_LABELS)}).",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    hours = forms.FloatField(min_value=0.01, max_value=24 * 90, initial=2)
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))

    def clean_matchers(self) -> list[dict[str, str]]:
        parsed = []
        for line in self.cleaned_data["matchers"].splitlines():
            line = line.strip()
            if not line:
                continue
            for op in (MatchOp.NOT_REGEX, MatchOp.REGEX, MatchOp.NOT_EQUAL, MatchOp.EQUAL):
                label, found, value = line.partition(str(op))
                if found:
                    parsed.append({"label": label.strip(), "op": str(op), "value": value.strip()})
                    break
            else:
                raise ValidationError(f"'{line}' has no operator (=, !=, =~, !~)")
        try:
            return clean_matchers(parsed)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


@login_required
def silences(request: HttpRequest) -> HttpResponse:
    access = Access.of(request)
    teams = access.teams_with(Scope.DEPLOY)
    form = SilenceForm(request.POST or None)
    form.fields["team"].queryset = Team.objects.filter(pk__in=[t.pk for t in teams])  # type: ignore[attr-defined]
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        silence = open_silence(
            team=data["team"],
            matchers=data["matchers"],
            ends_at=timezone.now() + timedelta(hours=data["hours"]),
            comment=data["comment"],
            actor=access,
        )
        messages.success(request, f"Silence {silence.pk} created.")
        return redirect("alerts:silences")
    now = timezone.now()
    listed = Silence.objects.select_related("team").filter(
        expired_at__isnull=True, ends_at__gt=now
    )[:200]
    return render(
        request,
        "alerts/silences.html",
        _context(
            request,
            silences=listed,
            form=form,
            can_create=bool(teams),
            allowed={t.pk for t in teams},
        ),
    )


@login_required
@require_POST
def silence_expire(request: HttpRequest, pk: int) -> HttpResponse:
    silence = get_object_or_404(Silence.objects.select_related("team"), pk=pk)
    access = Access.of(request)
    if not access.can(Scope.DEPLOY, silence.team):
        return HttpResponseForbidden("You need the deployer or owner role to expire this.")
    if expire_silence(silence, access):
        messages.success(request, f"Silence {silence.pk} expired.")
    else:
        messages.info(request, f"Silence {silence.pk} had already expired.")
    return redirect("alerts:silences")


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        help_text="Slack webhook URL, PagerDuty routing key, webhook signing secret or "
        "Apprise URL (workflows://, opsgenie://, tgram://, ...); never shown again.",
    )
    url = forms.URLField(required=False, max_length=500, assume_scheme="https")
    to = forms.CharField(required=False, help_text="Email: addresses separated by commas.")


class RouteForm(forms.Form):
    severity = forms.ChoiceField(choices=Severity.choices)
    channel = forms.ModelChoiceField(queryset=Channel.objects.none())
    escalation_level = forms.IntegerField(min_value=0, max_value=9, initial=0)
    group_wait_seconds = forms.IntegerField(min_value=0, max_value=3600, initial=10)


@login_required
def team_settings(request: HttpRequest, slug: str) -> HttpResponse:
    """A team's rules, channels and routes, for its owners."""
    team = get_object_or_404(Team, slug=slug)
    if not Access.of(request).can(Scope.WRITE, team):
        return HttpResponseForbidden(f"Only owners of {team.slug} manage its alert settings.")
    channel_form = ChannelForm(prefix="channel")
    route_form = RouteForm(prefix="route")
    route_form.fields["channel"].queryset = team.alert_channels.all()  # type: ignore[attr-defined]
    if request.method == "POST":
        outcome = _settings_post(request, team)
        if isinstance(outcome, HttpResponse):
            return outcome
        channel_form = outcome.get("channel_form", channel_form)  # type: ignore[assignment]
        route_form = outcome.get("route_form", route_form)  # type: ignore[assignment]
    return render(
        request,
        "alerts/team_settings.html",
        _context(
            request,
            team=team,
            rules=team.alert_rules.select_related("service", "environment"),
            channels=team.alert_channels.all(),
            routes=team.alert_routes.select_related("channel"),
            channel_form=channel_form,
            route_form=route_form,
            severities=Severity.choices,
        ),
    )


def _settings_post(request: HttpRequest, team: Team) -> HttpResponse | dict[str, forms.Form]:
    """Apply one settings change; a response when done, else the forms with their errors.

    Each change goes through the API's serializer and `controlplane.changes`, so it is
    checked and audited exactly as the same change through the API."""
    what = request.POST.get("what", "")
    back = redirect("alerts:team_settings", team.slug)
    access = Access.of(request)
    try:
        if what == "rule":
            return _save_rule(request, team, access, back)
        if what == "channel":
            return _create_channel(request, team, access, back)
        if what == "test":
            return _send_test(request, team, back)
        if what == "delete-channel":
            channel = get_object_or_404(Channel, pk=request.POST.get("channel"), team=team)
            changes.delete(channel, actor=access, events=CHANNEL_EVENTS)
            messages.success(request, f"Channel '{channel.name}' deleted.")
            return back
        if what == "route":
            return _create_route(request, team, access, back)
        if what == "delete-route":
            route = get_object_or_404(Route, pk=request.POST.get("route"), team=team)
            changes.delete(route, actor=access, events=ROUTE_EVENTS)
            messages.success(request, "Route deleted.")
            return back
    except changes.Conflict as conflict:
        messages.error(request, str(conflict))
        return back
    messages.error(request, "Unknown action.")
    return back


def _save_rule(
    request: HttpRequest, team: Team, access: Access, back: HttpResponse
) -> HttpResponse:
    rule = get_object_or_404(Rule, pk=request.POST.get("rule"), team=team)
    enabled = request.POST.get("enabled") == "on"
    if rule.is_protected and not enabled:
        messages.error(
            request, "A rollback always notifies the owning team; the rollback rule stays on."
        )
        return back
    data: dict[str, Any] = {"enabled": enabled}
    # The form sends "off" before its checkbox, so an unchecked box reads as off and a form
    # without the field changes nothing.
    if "notify_affected" in request.POST:
        data["notify_affected"] = "on" in request.POST.getlist("notify_affected")
    if request.POST.get("severity"):
        data["severity"] = request.POST["severity"]
    serializer = s.RuleSerializer(rule, data=data, partial=True)
    if not serializer.is_valid():
        messages.error(request, f"Rule '{rule.name}' not saved: {_reasons(serializer.errors)}")
        return back
    changes.update(serializer, actor=access, events=RULE_EVENTS)
    messages.success(request, f"Rule '{rule.name}' saved.")
    return back


# The channel form's fields by the name the API's serializer gives them.
CHANNEL_FORM_FIELDS = {"name": "name", "kind": "kind", "secret": "secret", "url": "url"}


def _create_channel(
    request: HttpRequest, team: Team, access: Access, back: HttpResponse
) -> HttpResponse | dict[str, forms.Form]:
    form = ChannelForm(request.POST, prefix="channel")
    if not form.is_valid():
        return {"channel_form": form}
    data = form.cleaned_data
    config = (
        {"to": [a.strip() for a in data["to"].split(",") if a.strip()]}
        if data["kind"] == ChannelKind.EMAIL
        else {}
    )
    serializer = s.ChannelSerializer(
        data={
            "team": team.slug,
            "name": data["name"],
            "kind": data["kind"],
            "secret": data["secret"],
            "url": data["url"],
            "config": config,
        }
    )
    if not serializer.is_valid():
        _errors_onto(form, serializer.errors, CHANNEL_FORM_FIELDS | {"config.to": "to"})
        return {"channel_form": form}
    changes.create(
        serializer,
        actor=access,
        events=CHANNEL_EVENTS,
        conflict="this team already has a channel of that name",
    )
    messages.success(request, f"Channel '{data['name']}' created.")
    return back


def _create_route(
    request: HttpRequest, team: Team, access: Access, back: HttpResponse
) -> HttpResponse | dict[str, forms.Form]:
    form = RouteForm(request.POST, prefix="route")
    form.fields["channel"].queryset = team.alert_channels.all()  # type: ignore[attr-defined]
    if not form.is_valid():
        return {"route_form": form}
    data = form.cleaned_data
    serializer = s.RouteSerializer(
        data={
            "team": team.slug,
            "severity": data["severity"],
            "channel": data["channel"].pk,
            "escalation_level": data["escalation_level"],
            "group_wait_seconds": data["group_wait_seconds"],
        }
    )
    if not serializer.is_valid():
        _errors_onto(form, serializer.errors, {name: name for name in form.fields})
        return {"route_form": form}
    changes.create(
        serializer, actor=access, events=ROUTE_EVENTS, conflict="that route already exists"
    )
    messages.success(request, "Route added.")
    return back


def _send_test(request: HttpRequest, team: Team, back: HttpResponse) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=request.POST.get("channel"), team=team)
    result = channels.send_test(channel)
    if result.ok:
        messages.success(request, f"Test sent to '{channel.name}' ({result.status_code or 'ok'}).")
    else:
        messages.error(request, f"Test to '{channel.name}' failed: {result.error}")
    return back


def _flat(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """A serializer's nested errors as {dotted field: [reasons]}."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(errors, list) and all(not isinstance(e, (dict, list)) for e in errors):
        out[prefix or NON_FIELD_ERRORS] = [str(e) for e in errors]
    elif isinstance(errors, list):
        for index, value in enumerate(errors):
            out.update(_flat(value, f"{prefix}.{index}"))
    else:
        out[prefix or NON_FIELD_ERRORS] = [str(errors)]
    return out


def _errors_onto(form: forms.Form, errors: Any, fields: dict[str, str]) -> None:
    """Put the API's reasons next to the form fields they are about (else on the form)."""
    for field, reasons in _flat(errors).items():
        form.add_error(fields.get(field), " ".join(reasons))


def _reasons(errors: Any) -> str:
    return "; ".join(f"{field}: {' '.join(r)}" for field, r in _flat(errors).items())


def _verified(request: HttpRequest) -> str:
    return slack_bot.verify(
        settings.SLACK_SIGNING_SECRET,
        request.headers.get("X-Slack-Request-Timestamp"),
        request.headers.get("X-Slack-Signature"),
        request.body,
        time.time(),
    )


@csrf_exempt  # Slack cannot send our CSRF token; the request signature replaces it
@require_POST
def slack_command(request: HttpRequest) -> HttpResponse:
    refusal = _verified(request)
    if refusal:
        return JsonResponse({"error": refusal}, status=401)
    form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
    answer = slack_bot.command(
        form.get("team_id", ""), form.get("user_id", ""), form.get("text", "")
    )
    return JsonResponse(answer)


@csrf_exempt  # as above: signed by Slack
@require_POST
def slack_interaction(request: HttpRequest) -> HttpResponse:
    refusal = _verified(request)
    if refusal:
        return JsonResponse({"error": refusal}, status=401)
    raw = parse_qs(request.body.decode()).get("payload", ["{}"])[0]
    try:
        payload = json.loads(raw)
    except ValueError:
        return JsonResponse({"error": "payload is not JSON"}, status=400)
    return JsonResponse(slack_bot.interaction(payload))
