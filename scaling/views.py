"""The scaling pages: every group, one group (its settings, instances, decisions explained,
launches and drain reports) and its controls, which call `scaling.controls` like the API."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from catalog.choices import Scope
from catalog.models import Team
from catalog.permissions import Access
from controlplane.changes import Conflict
from scaling import controls, pages
from scaling.models import ScalingGroup
from scaling.policy import MAX_REPLICAS_LIMIT


class DesiredForm(forms.Form):
    desired = forms.IntegerField(label="Desired instances", min_value=0,
                                 max_value=MAX_REPLICAS_LIMIT)  # fmt: skip
    reason = forms.CharField(
        label="Reason",
        max_length=300,
        error_messages={"required": "Say why: it is recorded with your name on the decision."},
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason", max_length=300, required=False)


def _may_act(request: HttpRequest, group: ScalingGroup) -> bool:
    return Access.of(request).can(Scope.DEPLOY, group.service.team, group.service)


def _htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


@login_required
def group_list(request: HttpRequest) -> HttpResponse:
    """Every group, or one team's: desired against what runs, paused or not, last decision."""
    slug = request.GET.get("team", "")
    team = Team.objects.filter(slug=slug).first() if slug else None
    page = Paginator(pages.groups_of(team), pages.GROUPS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "rows": pages.group_rows(list(page.object_list)),
        "page": page,
        "teams": Team.objects.only("slug", "name").order_by("slug"),
        "team": team,
        "unknown_team": slug if slug and team is None else "",
        # Rows are pushed by id: live only while every row of the list is on the page.
        "live": page.paginator.num_pages <= 1 and not (slug and team is None),
    }
    return render(request, "scaling/groups.html", context)


def _group(pk: int) -> ScalingGroup:
    return get_object_or_404(pages.group_query(), pk=pk)


def _page(
    request: HttpRequest,
    group: ScalingGroup,
    desired_form: DesiredForm | None = None,
    status: int = 200,
) -> HttpResponse:
    history = pages.history_context(group, request.GET.get("page"))
    context = {
        **pages.summary_context(group, timezone.now()),
        **history,
        "can_act": _may_act(request, group),
        "desired_form": desired_form or DesiredForm(initial={"desired": group.desired}),
        # Older decisions stay still: pushes only ever bring the newest.
        "live": history["decision_page"].number == 1,
    }
    return render(request, "scaling/group.html", context, status=status)


@login_required
def group_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _page(request, _group(pk))


@login_required
def group_actions(request: HttpRequest, pk: int) -> HttpResponse:
    """Pause/resume and rolling restart for this person (fetched after a push replaced them)."""
    group = _group(pk)
    return _actions(request, group)


def _actions(
    request: HttpRequest, group: ScalingGroup, note: str = "", error: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "group": group,
        "can_act": _may_act(request, group),
        "reason_form": ReasonForm(),
        "note": note,
        "error": error,
    }
    return render(request, "scaling/partials/group_actions.html", context, status=status)


def _refused(request: HttpRequest, group: ScalingGroup) -> HttpResponse:
    return HttpResponseForbidden(
        Access.of(request).why_not(Scope.DEPLOY, group.service.team, group.service)
    )


@login_required
@require_POST
def set_desired(request: HttpRequest, pk: int) -> HttpResponse:
    """Set the count by hand (autoscaling pauses); bad input comes back next to its field."""
    group = _group(pk)
    if not _may_act(request, group):
        return _refused(request, group)
    form = DesiredForm(request.POST)
    status = 400
    if form.is_valid():
        before = group.desired
        try:
            group = controls.set_desired(
                group, form.cleaned_data["desired"], Access.of(request), form.cleaned_data["reason"]
            )
        except Conflict as error:
            form.add_error("desired", str(error))
            status = 409
        else:
            note = f"Desired set to {group.desired} (was {before}); autoscaling paused."
            if _htmx(request):
                fresh = DesiredForm(initial={"desired": group.desired})
                return _desired_form(request, group, fresh, note=note)
            messages.success(request, note)
            return redirect(group.get_absolute_url())
    if _htmx(request):
        return _desired_form(request, group, form, status=status)
    return _page(request, group, desired_form=form, status=status)


def _desired_form(
    request: HttpRequest, group: ScalingGroup, form: DesiredForm, note: str = "", status: int = 200
) -> HttpResponse:
    context = {"group": group, "desired_form": form, "note": note, "can_act": True}
    return render(request, "scaling/partials/desired_form.html", context, status=status)


Control = Callable[[ScalingGroup, Access, str], ScalingGroup]


def _control(request: HttpRequest, pk: int, act: Control, done: str) -> HttpResponse:
    group = _group(pk)
    if not _may_act(request, group):
        return _refused(request, group)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        error = "; ".join(f"{name}: {' '.join(map(str, e))}" for name, e in form.errors.items())
        return _respond(request, group, error=error, status=400)
    try:
        group = act(group, Access.of(request), form.cleaned_data["reason"])
    except Conflict as error:
        return _respond(request, group, error=str(error), status=409)
    return _respond(request, group, note=done)


def _respond(
    request: HttpRequest, group: ScalingGroup, note: str = "", error: str = "", status: int = 200
) -> HttpResponse:
    if _htmx(request):
        return _actions(request, group, note=note, error=error, status=status)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, note)
    return redirect(group.get_absolute_url())


def _resume(group: ScalingGroup, access: Access, reason: str) -> ScalingGroup:
    return controls.resume(group, access)


@login_required
@require_POST
def pause(request: HttpRequest, pk: int) -> HttpResponse:
    return _control(request, pk, controls.pause, "Autoscaling paused: desired stays as it is.")


@login_required
@require_POST
def resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _control(request, pk, _resume, "Autoscaling resumed: the next tick decides.")


@login_required
@require_POST
def restart(request: HttpRequest, pk: int) -> HttpResponse:
    return _control(
        request,
        pk,
        controls.start_restart,
        "Rolling restart started: instances are replaced one by one.",
    )
