"""The team page's forms: invite, change a role, remove; issue and revoke tokens; create,
edit and test notification channels and routes; and accepting an invitation.

Every change is checked as the API checks it (owners of the team, or platform admins: a
viewer or outsider gets 403), validated by the API's serializer and saved by the same
service function, in one transaction, as one audited event. A refused change re-shows the
team page with the reason next to the field (400, or 409 for a clash with the state)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from rest_framework import exceptions

from alerts import channels as alert_channels
from alerts.api.serializers import ChannelSerializer, RouteSerializer
from alerts.choices import CHANNEL_EVENTS, ROUTE_EVENTS
from alerts.models import Channel, Route
from catalog import invitations, members, tokens
from catalog.api.serializers import MembershipSerializer, TokenIssueSerializer
from catalog.choices import MEMBERSHIP_EVENTS, Scope
from catalog.models import ApiToken, Invitation, Membership, Team
from catalog.permissions import Access
from controlplane import changes
from dashboard import team_forms as tf
from dashboard import team_page

# -- helpers --------------------------------------------------------------------------------


def _managed_team(request: HttpRequest, slug: str) -> tuple[Team, Access]:
    """The team, when the caller may change its settings (the API's `write` on the team)."""
    team = get_object_or_404(Team, slug=slug)
    access = Access.of(request)
    if not access.can(Scope.WRITE, team):
        raise PermissionDenied(access.why_not(Scope.WRITE, team))
    return team, access


def _back(team: Team, anchor: str) -> HttpResponse:
    return HttpResponseRedirect(f"{team.get_absolute_url()}#{anchor}")


def _again(
    request: HttpRequest, team: Team, bound: dict[Any, Any], status: int = 400
) -> HttpResponse:
    """The team page again, with the failed form's values and reasons, nothing saved."""
    from dashboard.views import _acting_teams

    context = team_page.page_context(request, team, _acting_teams(request), bound)
    context["form_failed"] = True
    return render(request, "dashboard/team.html", context, status=status)


# -- members --------------------------------------------------------------------------------


@login_required
@require_POST
def invite(request: HttpRequest, slug: str) -> HttpResponse:
    """Invite an email address into the team: the invitation and its email, or neither."""
    team, access = _managed_team(request, slug)
    form = tf.InviteForm(request.POST, prefix="invite")
    if not form.is_valid():
        return _again(request, team, {"invite_form": form})
    email, role = form.cleaned_data["email"], form.cleaned_data["role"]
    try:
        invitation = invitations.invite(team, email, role, actor=access, invited_by=request.user)
    except exceptions.ValidationError as refused:
        # A member already, or invited already: a clash with the team's state.
        for reason in _reasons(refused, "email"):
            form.add_error("email", reason)
        return _again(request, team, {"invite_form": form}, status=409)
    except OSError as error:  # SMTP refused or unreachable: nothing was saved
        form.add_error(
            None,
            f"The invitation email could not be sent ({error}); nothing was saved. "
            "Check the email settings (docs/configuration.md) and try again.",
        )
        return _again(request, team, {"invite_form": form}, status=502)
    messages.success(
        request,
        f"Invitation sent to {invitation.email} as {role}; the link works until "
        f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC.",
    )
    return _back(team, "team-members")


def _reasons(refused: exceptions.ValidationError, field: str) -> list[str]:
    detail = refused.detail
    found = detail.get(field, []) if isinstance(detail, dict) else detail
    return [str(reason) for reason in (found if isinstance(found, list) else [found])]


@login_required
@require_POST
def cancel_invitation(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    team, access = _managed_team(request, slug)
    invitation = get_object_or_404(Invitation, pk=pk, team=team)
    if invitations.cancel(invitation, actor=access):
        messages.success(request, f"Invitation of {invitation.email} cancelled.")
    return _back(team, "team-members")


@login_required
@require_POST
def member_role(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    team, access = _managed_team(request, slug)
    membership = get_object_or_404(
        Membership.objects.select_related("user", "team"), pk=pk, team=team
    )
    form = tf.RoleForm(request.POST, prefix=f"m{pk}")
    key = ("member", membership.pk)
    if not form.is_valid():
        return _again(request, team, {key: form})
    serializer = MembershipSerializer(
        membership, data={"role": form.cleaned_data["role"]}, partial=True
    )
    if not serializer.is_valid():
        tf.errors_onto(form, serializer.errors)
        return _again(request, team, {key: form})
    try:
        members.change_role(serializer, actor=access)
    except changes.Conflict as conflict:
        form.add_error("role", str(conflict))
        return _again(request, team, {key: form}, status=409)
    messages.success(request, f"{membership.user} is now {membership.role} of {team.slug}.")
    return _back(team, "team-members")


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    team, access = _managed_team(request, slug)
    membership = get_object_or_404(
        Membership.objects.select_related("user", "team"), pk=pk, team=team
    )
    try:
        members.remove(membership, actor=access)
    except changes.Conflict as conflict:
        form = tf.RoleForm(initial={"role": membership.role}, prefix=f"m{pk}")
        form.is_bound = True
        form.data = {f"m{pk}-role": membership.role}
        form.full_clean()
        form.add_error("role", f"Not removed: {conflict}")
        return _again(request, team, {("member", membership.pk): form}, status=409)
    messages.success(request, f"{membership.user} removed from {team.slug}.")
    return _back(team, "team-members")


# -- tokens ---------------------------------------------------------------------------------


def _token_services(team: Team) -> list[tuple[str, str]]:
    return [(s.slug, s.slug) for s in team.services.order_by("slug").only("slug")]


@login_required
@require_POST
def token_create(request: HttpRequest, slug: str) -> HttpResponse:
    """Issue a token and show its value, this once (the answer is not a redirect: nothing
    keeps the value, and reloading the team page never shows it again)."""
    team, access = _managed_team(request, slug)
    form = tf.TokenForm(request.POST, prefix="token", services=_token_services(team))
    if not form.is_valid():
        return _again(request, team, {"token_form": form})
    data = form.cleaned_data
    days = data.get("expires_in_days")
    serializer = TokenIssueSerializer(
        data={
            "team": team.slug,
            "name": data["name"],
            "scopes": data["scopes"],
            "service": data["service"] or None,
            "expires_at": timezone.now() + timedelta(days=days) if days else None,
        }
    )
    renamed = {"expires_at": "expires_in_days", "team": NON_FIELD_ERRORS}
    if not serializer.is_valid():
        tf.errors_onto(form, serializer.errors, renamed)
        return _again(request, team, {"token_form": form})
    try:
        token, plain = tokens.issue(serializer, actor=access, created_by=request.user)
    except exceptions.ValidationError as clash:  # an active token of that name (409)
        tf.errors_onto(form, clash.detail, renamed)
        return _again(request, team, {"token_form": form}, status=409)
    response = render(
        request,
        "dashboard/token_issued.html",
        {"team": team, "token": token, "plain": plain},
        status=201,
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    team, access = _managed_team(request, slug)
    token = get_object_or_404(ApiToken.objects.select_related("team"), pk=pk, team=team)
    if tokens.revoke(token, actor=access):
        messages.success(request, f"Token {token.name} revoked: it no longer works.")
    else:
        messages.info(request, f"Token {token.name} was already revoked.")
    return _back(team, "team-tokens")


# -- channels and routes --------------------------------------------------------------------


def _team_channels(team: Team) -> list[Channel]:
    return list(Channel.objects.filter(team=team).order_by("name"))


@login_required
@require_POST
def channel_create(request: HttpRequest, slug: str) -> HttpResponse:
    team, access = _managed_team(request, slug)
    form = tf.ChannelForm(request.POST, prefix="channel")
    return _save_channel(request, team, access, form, "channel_form")


@login_required
@require_POST
def channel_edit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    team, access = _managed_team(request, slug)
    channel = get_object_or_404(Channel.objects.select_related("team"), pk=pk, team=team)
    form = tf.ChannelForm(request.POST, prefix=f"c{pk}", channel=channel)
    return _save_channel(request, team, access, form, ("channel", pk))


def _save_channel(
    request: HttpRequest, team: Team, access: Access, form: tf.ChannelForm, key: Any
) -> HttpResponse:
    if not form.is_valid():
        return _again(request, team, {key: form})
    channel = form.channel
    if channel is None:
        serializer = ChannelSerializer(data=form.api_data(team))
    else:
        serializer = ChannelSerializer(channel, data=form.api_data(team), partial=True)
    if not serializer.is_valid():
        tf.errors_onto(form, serializer.errors, tf.CHANNEL_FIELDS)
        return _again(request, team, {key: form})
    clash = "this team already has a channel of that name"
    try:
        if channel is None:
            changes.create(serializer, actor=access, events=CHANNEL_EVENTS, conflict=clash)
        else:
            changes.update(serializer, actor=access, events=CHANNEL_EVENTS, conflict=clash)
    except exceptions.ValidationError as duplicate:
        tf.errors_onto(form, duplicate.detail, tf.CHANNEL_FIELDS)
        return _again(request, team, {key: form}, status=409)
    except changes.Conflict as conflict:
        form.add_error("name", str(conflict))
        return _again(request, team, {key: form}, status=409)
    verb = "created" if channel is None else "saved"
    messages.success(request, f"Channel '{form.cleaned_data['name']}' {verb}.")
    return _back(team, "team-channels")


@login_required
@require_POST
def channel_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    team, access = _managed_team(request, slug)
    channel = get_object_or_404(Channel.objects.select_related("team"), pk=pk, team=team)
    changes.delete(channel, actor=access, events=CHANNEL_EVENTS)
    messages.success(request, f"Channel '{channel.name}' and its routes deleted.")
    return _back(team, "team-channels")


@login_required
@require_POST
def channel_test(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Send a test notification to the channel now, through the outbox (a notification row
    and its delivery attempt, as any delivery), and say how it went."""
    team, _ = _managed_team(request, slug)
    channel = get_object_or_404(Channel.objects.select_related("team"), pk=pk, team=team)
    result = alert_channels.send_test(channel)
    if result.ok:
        answer = f" (HTTP {result.status_code})" if result.status_code else ""
        messages.success(request, f"Test sent to '{channel.name}'{answer}: check it arrived.")
    else:
        status = f"HTTP {result.status_code}: " if result.status_code else ""
        messages.error(request, f"Test to '{channel.name}' failed: {status}{result.error}")
    return _back(team, f"team-channel-{channel.pk}")


@login_required
@require_POST
def route_create(request: HttpRequest, slug: str) -> HttpResponse:
    team, access = _managed_team(request, slug)
    form = tf.RouteForm(request.POST, prefix="route", channels=_team_channels(team))
    return _save_route(request, team, access, form, None, "route_form")


@login_required
@require_POST
def route_edit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    team, access = _managed_team(request, slug)
    route = get_object_or_404(Route.objects.select_related("team", "channel"), pk=pk, team=team)
    form = tf.RouteForm(request.POST, prefix=f"r{pk}", channels=_team_channels(team))
    return _save_route(request, team, access, form, route, ("route", pk))


def _save_route(
    request: HttpRequest,
    team: Team,
    access: Access,
    form: tf.RouteForm,
    route: Route | None,
    key: Any,
) -> HttpResponse:
    if not form.is_valid():
        return _again(request, team, {key: form})
    data = form.api_data(team)
    if route is None:
        serializer = RouteSerializer(data=data)
    else:
        data.pop("team")
        serializer = RouteSerializer(route, data=data, partial=True)
    renamed = {"team": NON_FIELD_ERRORS}
    if not serializer.is_valid():
        tf.errors_onto(form, serializer.errors, renamed)
        return _again(request, team, {key: form})
    try:
        if route is None:
            changes.create(serializer, actor=access, events=ROUTE_EVENTS)
        else:
            changes.update(serializer, actor=access, events=ROUTE_EVENTS)
    except exceptions.ValidationError as duplicate:
        tf.errors_onto(form, duplicate.detail, renamed)
        return _again(request, team, {key: form}, status=409)
    except changes.Conflict as conflict:
        form.add_error(None, str(conflict))
        return _again(request, team, {key: form}, status=409)
    messages.success(request, "Route added." if route is None else "Route saved.")
    return _back(team, "team-routes")


@login_required
@require_POST
def route_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    team, access = _managed_team(request, slug)
    route = get_object_or_404(Route.objects.select_related("team", "channel"), pk=pk, team=team)
    changes.delete(route, actor=access, events=ROUTE_EVENTS)
    messages.success(request, "Route deleted.")
    return _back(team, "team-routes")


# -- accepting an invitation ----------------------------------------------------------------


class SignUpForm(UserCreationForm):  # type: ignore[type-arg]
    """A new account for an invited person (Django's password validators apply)."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)


def _pending(token: str, *, lock: bool = False) -> Invitation:
    rows = Invitation.objects.select_related("team", "invited_by")
    if lock:
        rows = rows.select_for_update(of=("self",))
    invitation = rows.filter(token_hash=Invitation.hash_token(token)).first()
    if invitation is None or not invitation.is_pending:
        raise Http404(
            "This invitation link is unknown, used, cancelled or expired: ask an owner of "
            "the team for a new one."
        )
    return invitation


def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: shows the team and role; accepting links the signed-in person, or
    creates an account (when none has the invited address) and links it."""
    invitation = _pending(token)
    user_model = get_user_model()
    existing = user_model.objects.filter(email__iexact=invitation.email).exists()
    signup: SignUpForm | None = None
    if not request.user.is_authenticated and not existing:
        signup = SignUpForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if request.user.is_authenticated:
            return _accept(request, token, request.user)
        if signup is not None and signup.is_valid():
            with transaction.atomic():
                user = signup.save(commit=False)
                user.email = invitation.email
                user.save()
                response = _accept(request, token, user)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return response
        if signup is None:
            raise PermissionDenied("log in first: an account already has this email address")
    return render(
        request,
        "dashboard/invitation.html",
        {
            "invitation": invitation,
            "signup": signup,
            "existing": existing,
            "login_url": f"{reverse('login')}?next={request.path}",
        },
        status=400 if signup is not None and signup.errors else 200,
    )


def _accept(request: HttpRequest, token: str, user: Any) -> HttpResponse:
    with transaction.atomic():
        invitation = _pending(token, lock=True)
        team = invitation.team
        current = Membership.objects.filter(team=team, user=user).first()
        if current is None:
            serializer = MembershipSerializer(
                data={"team": team.slug, "user": user.get_username(), "role": invitation.role}
            )
            serializer.is_valid(raise_exception=True)
            changes.create(serializer, actor=user, events=MEMBERSHIP_EVENTS)
            note = f"Welcome to {team.name}: you are {invitation.role}."
        else:
            note = f"You were already {current.role} of {team.name}; your role is unchanged."
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        if not user.email:
            user.email = invitation.email
            user.save(update_fields=["email"])
    messages.success(request, note)
    return HttpResponseRedirect(team.get_absolute_url())
