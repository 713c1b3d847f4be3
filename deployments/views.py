"""Dashboard pages: the deployments board, a rollout's page, its actions, a service's history."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Case, Count, IntegerField, Prefetch, Value, When
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from rest_framework import exceptions

from catalog.choices import LIVE_LIFECYCLES, Scope
from catalog.models import Environment, Instance, Service
from catalog.permissions import Access
from controlplane import changes
from deployments import actions
from deployments.api.serializers import FreezeWindowSerializer, RecurringFreezeWindowSerializer
from deployments.choices import (
    ACTIVE_STATES,
    FREEZE_WINDOW_EVENTS,
    RECURRING_FREEZE_WINDOW_EVENTS,
    TERMINAL_STATES,
    Action,
    RolloutState,
    StepKind,
    Weekday,
)
from deployments.freeze import freezes_at
from deployments.models import (
    FreezeWindow,
    Measurement,
    RecurringFreezeWindow,
    Rollout,
    RolloutStep,
)

HISTORY_ROWS = 25
# Active rollouts per board page. At 10,000 services the fleet had 200 under way: one table
# of them was 116 KB and 1.2 s p95 under load 16 (bench/RESULTS.md); 50 a page were 41 KB,
# p50 74 / p95 109 ms under load 3.3; 25 keep it under 100 ms, problems first (paused and
# rolling back sort ahead of the rest).
BOARD_PAGE_ROWS = 25
# The board's order: rollouts needing a look first, then the newest.
BOARD_PROBLEMS_FIRST = Case(
    When(state__in=(RolloutState.PAUSED, RolloutState.ROLLING_BACK), then=Value(0)),
    default=Value(1),
    output_field=IntegerField(),
)
SERVICE_HISTORY_ROWS = 10
CHART_WIDTH, CHART_HEIGHT = 600, 120


def _rollouts() -> Any:
    return Rollout.objects.select_related("team", "service", "environment")


def latest_verdicts(rollout_ids: list[int]) -> dict[int, list[Measurement]]:
    """The latest measurement of each metric of each rollout, in one query (DISTINCT ON)."""
    found: dict[int, list[Measurement]] = defaultdict(list)
    if not rollout_ids:
        return found
    rows = (
        Measurement.objects.filter(rollout_id__in=rollout_ids)
        .order_by("rollout_id", "metric", "-measured_at", "-id")
        .distinct("rollout_id", "metric")
    )
    for row in rows:
        found[row.rollout_id].append(row)
    return found


def board_context(page: int = 1) -> dict[str, Any]:
    """One page of the active rollouts (problems first, then the newest), the recent
    finished ones and the frozen environments; the count says how many pages there are."""
    running = _rollouts().filter(state__in=ACTIVE_STATES)
    total = running.count()
    start = (page - 1) * BOARD_PAGE_ROWS
    active = list(
        running.annotate(problem=BOARD_PROBLEMS_FIRST).order_by("problem", "-created_at", "-id")[
            start : start + BOARD_PAGE_ROWS
        ]
    )
    verdicts = latest_verdicts([r.pk for r in active])
    for rollout in active:
        rollout.verdicts = verdicts.get(rollout.pk, [])
    history = list(
        _rollouts().filter(state__in=TERMINAL_STATES).order_by("-finished_at", "-id")[:HISTORY_ROWS]
    )
    frozen = sorted(freezes_at().values(), key=lambda f: (f.environment.order, f.environment.slug))
    pages = max((total + BOARD_PAGE_ROWS - 1) // BOARD_PAGE_ROWS, 1)
    return {
        "active": active,
        "active_total": total,
        "first_shown": start + 1 if active else 0,
        "last_shown": start + len(active),
        "page": page,
        "pages": pages,
        "previous_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if page < pages else None,
        "history": history,
        "frozen": frozen,
    }


@login_required
def board(request: HttpRequest) -> HttpResponse:
    """Every team's active rollouts, a page at a time (live), and the recent finished ones."""
    raw = request.GET.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        return HttpResponseBadRequest("page: a whole number from 1")
    return render(request, "deployments/board.html", board_context(int(raw)))


def weight_points(rollout: Rollout, steps: list[RolloutStep]) -> list[tuple[Any, float]]:
    """(time, new version's %) at each change the router confirmed, as a step chart's corners."""
    points: list[tuple[Any, float]] = [(rollout.started_at or rollout.created_at, 0.0)]
    kinds = (StepKind.SET_WEIGHT, StepKind.PREVIEW, StepKind.FINALIZE, StepKind.ROLLBACK)
    for step in steps:
        if step.kind in kinds and step.applied_weight is not None and step.finished_at:
            points.append((step.finished_at, step.applied_weight))
    return points


def weight_chart(rollout: Rollout, steps: list[RolloutStep]) -> str:
    """An SVG polyline of the weights over time (server-side: no JS needed to see it)."""
    points = weight_points(rollout, steps)
    start = points[0][0]
    end = rollout.finished_at or max(p[0] for p in points)
    span = max((end - start).total_seconds(), 1.0)
    corners: list[str] = []
    previous = None
    for at, weight in [*points, (end, points[-1][1])]:
        x = round(CHART_WIDTH * (at - start).total_seconds() / span, 1)
        y = round(CHART_HEIGHT * (1 - weight / 100), 1)
        if previous is not None:
            corners.append(f"{x},{previous}")
        corners.append(f"{x},{y}")
        previous = y
    return " ".join(corners)


def rollout_context(rollout: Rollout) -> dict[str, Any]:
    runs = list(
        rollout.analysis_runs.prefetch_related(
            Prefetch("measurements", Measurement.objects.order_by("-measured_at", "-id"))
        )
    )
    steps = list(rollout.step_runs.all())
    return {
        "rollout": rollout,
        "step_runs": steps,
        "analysis_runs": runs,
        "chart_points": weight_chart(rollout, steps),
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "allowed_actions": rollout.allowed_actions(),
    }


def can_act(request: HttpRequest, rollout: Rollout) -> bool:
    return Access.of(request).can(Scope.DEPLOY, rollout.team, rollout.service)


@login_required
def rollout_detail(request: HttpRequest, pk: int) -> HttpResponse:
    rollout = get_object_or_404(_rollouts(), pk=pk)
    context = rollout_context(rollout)
    context["can_act"] = can_act(request, rollout)
    return render(request, "deployments/rollout.html", context)


@login_required
def rollout_actions(request: HttpRequest, pk: int) -> HttpResponse:
    """The action buttons for this user (fetched after a live update replaced them)."""
    rollout = get_object_or_404(_rollouts(), pk=pk)
    return render(
        request,
        "deployments/partials/rollout_actions.html",
        {
            "rollout": rollout,
            "can_act": can_act(request, rollout),
            "allowed_actions": rollout.allowed_actions(),
        },
    )


@login_required
@require_POST
def rollout_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    rollout = get_object_or_404(_rollouts(), pk=pk)
    if action not in Action.values:
        return HttpResponse(status=404)
    if not can_act(request, rollout):
        return HttpResponseForbidden(
            f"only deployers and owners of {rollout.team.slug} may act on its rollouts"
        )
    target = rollout
    try:
        target = actions.act(
            rollout.pk,
            action,
            access=Access.of(request),
            reason=request.POST.get("reason", "").strip(),
            full=request.POST.get("full") == "true",
        )
    except actions.RolloutError as error:
        messages.error(request, error.message)
    else:
        done = Action(action).label.lower()
        messages.success(
            request, f"{done}: rollout #{target.pk} {target.get_state_display().lower()}"
        )
    url = target.get_absolute_url()
    if getattr(request, "htmx", False):
        return HttpResponse(status=204, headers={"HX-Redirect": url})
    return redirect(url)


def service_history(service: Service, limit: int = SERVICE_HISTORY_ROWS) -> dict[str, Any]:
    """Context for `deployments/partials/service_history.html` on the service page."""
    rollouts = list(
        Rollout.objects.filter(service=service)
        .select_related("environment")
        .order_by("-created_at", "-id")[:limit]
    )
    return {"deploy_history": rollouts, "deploy_service": service}


# -- freeze windows ----------------------------------------------------------------------

# Ended one-off windows shown under the current and coming ones (the API lists them all).
ENDED_FREEZES_SHOWN = 10
FREEZE_FORMS = {
    "one-off": ("environment", "starts_at", "ends_at", "reason"),
    "recurring": ("environment", "name", "start_time", "duration_minutes", "timezone", "reason"),
}


def _freeze_forms(
    kind: str = "", values: dict[str, Any] | None = None, errors: dict[str, str] | None = None
) -> dict[str, Any]:
    now = timezone.now().replace(second=0, microsecond=0)
    forms: dict[str, dict[str, Any]] = {
        "one-off": {
            "values": {
                "environment": "",
                "starts_at": now.strftime("%Y-%m-%dT%H:%M"),
                "ends_at": (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
                "reason": "",
            },
            "errors": {},
        },
        "recurring": {
            "values": {
                "environment": "",
                "name": "",
                "days": [],
                "start_time": "16:00",
                "duration_minutes": "960",
                "timezone": "UTC",
                "reason": "",
            },
            "errors": {},
        },
    }
    if kind in forms:
        forms[kind] = {"values": {**forms[kind]["values"], **(values or {})}, "errors": errors}
    return forms


def _freeze_errors(errors: Any) -> dict[str, str]:
    return {
        str(k): "; ".join(str(m) for m in (v if isinstance(v, list) else [v]))
        for k, v in (errors or {}).items()
    }


def _covered(environments: list[Environment]) -> dict[int, int]:
    """Per environment id, how many services have live instances there (what a freeze stops)."""
    return dict(
        Instance.objects.filter(lifecycle__in=LIVE_LIFECYCLES)
        .values("environment_id")
        .annotate(n=Count("service_id", distinct=True))
        .values_list("environment_id", "n")
    )


def freezes_context(request: HttpRequest, **forms: Any) -> dict[str, Any]:
    now = timezone.now()
    environments = list(Environment.objects.all())
    frozen = freezes_at(environments, now)
    services_in = _covered(environments)
    one_off = FreezeWindow.objects.select_related("environment", "created_by")
    current = list(one_off.filter(ends_at__gt=now).order_by("starts_at"))
    recurring = list(RecurringFreezeWindow.objects.select_related("environment", "created_by"))
    forms = forms or _freeze_forms()
    return {
        "now": now,
        "environments": environments,
        "states": [
            {"environment": e, "freeze": frozen.get(e.pk), "services": services_in.get(e.pk, 0)}
            for e in environments
        ],
        "current": [(w, services_in.get(w.environment_id, 0)) for w in current],
        "ended": one_off.filter(ends_at__lte=now).order_by("-ends_at")[:ENDED_FREEZES_SHOWN],
        "recurring": [(w, services_in.get(w.environment_id, 0)) for w in recurring],
        "is_admin": Access.of(request).is_admin,
        "weekdays": Weekday.choices,
        "one_off_form": forms["one-off"],
        "recurring_form": forms["recurring"],
    }


@login_required
def freezes(request: HttpRequest) -> HttpResponse:
    """Freeze windows: what is frozen now, coming and recurring windows; admins change them."""
    return render(request, "deployments/freezes.html", freezes_context(request))


def _admins_only(request: HttpRequest) -> HttpResponse | None:
    if Access.of(request).is_admin:
        return None
    return HttpResponseForbidden(
        "Freeze windows are platform-wide: only platform admins may change them.",
        content_type="text/plain; charset=utf-8",
    )


@login_required
@require_POST
def freeze_create(request: HttpRequest, kind: str) -> HttpResponse:
    """A new one-off or recurring freeze, through the API's serializer and one event."""
    refused = _admins_only(request)
    if refused is not None:
        return refused
    if kind not in FREEZE_FORMS:
        return HttpResponseForbidden("No such kind of freeze window.")
    values: dict[str, Any] = {k: request.POST.get(k, "").strip() for k in FREEZE_FORMS[kind]}
    body: dict[str, Any] = dict(values)
    if kind == "one-off":
        for name in ("starts_at", "ends_at"):  # datetime-local inputs, read as UTC
            body[name] = f"{values[name]}Z" if values[name] else None
        serializer: Any = FreezeWindowSerializer(data=body, context={"request": request})
        events = FREEZE_WINDOW_EVENTS
    else:
        values["days"] = body["days"] = request.POST.getlist("days")
        serializer = RecurringFreezeWindowSerializer(data=body, context={"request": request})
        events = RECURRING_FREEZE_WINDOW_EVENTS
    errors = {} if serializer.is_valid() else _freeze_errors(serializer.errors)
    if not errors:
        try:
            changes.create(serializer, actor=Access.of(request), events=events)
        except (exceptions.ValidationError, changes.Conflict) as exc:
            detail = getattr(exc, "detail", {"non_field_errors": [str(exc)]})
            errors = _freeze_errors(detail)
    if errors:
        context = freezes_context(request, **_freeze_forms(kind, values, errors))
        return render(request, "deployments/freezes.html", context, status=400)
    messages.success(request, f"{events.noun.capitalize()} created.")
    return redirect("deployments:freezes")


@login_required
@require_POST
def freeze_end(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """End a one-off freeze now (one that has begun) or delete it (one still to come); a
    recurring window is deleted."""
    refused = _admins_only(request)
    if refused is not None:
        return refused
    access = Access.of(request)
    now = timezone.now()
    if kind == "recurring":
        recurring = get_object_or_404(
            RecurringFreezeWindow.objects.select_related("environment"), pk=pk
        )
        changes.delete(recurring, actor=access, events=RECURRING_FREEZE_WINDOW_EVENTS)
        messages.success(request, f"Recurring freeze window '{recurring.name}' deleted.")
        return redirect("deployments:freezes")
    window = get_object_or_404(FreezeWindow.objects.select_related("environment"), pk=pk)
    if window.starts_at <= now < window.ends_at:
        serializer = FreezeWindowSerializer(
            window, data={"ends_at": now.isoformat()}, partial=True, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)  # now is after a begun window's start
        changes.update(serializer, actor=access, events=FREEZE_WINDOW_EVENTS)
        messages.success(request, f"{window.environment.slug} is no longer frozen by #{window.pk}.")
    else:
        changes.delete(window, actor=access, events=FREEZE_WINDOW_EVENTS)
        messages.success(request, f"Freeze window #{window.pk} deleted.")
    return redirect("deployments:freezes")
