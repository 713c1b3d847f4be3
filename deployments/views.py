"""Dashboard pages: the deployments board, a rollout's page, its actions, a service's history."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from catalog.choices import Scope
from catalog.models import Service
from catalog.permissions import Access
from deployments import actions
from deployments.choices import ACTIVE_STATES, TERMINAL_STATES, Action, StepKind
from deployments.freeze import freezes_at
from deployments.models import Measurement, Rollout, RolloutStep

HISTORY_ROWS = 25
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


def board_context() -> dict[str, Any]:
    active = list(_rollouts().filter(state__in=ACTIVE_STATES).order_by("team__slug", "created_at"))
    verdicts = latest_verdicts([r.pk for r in active])
    for rollout in active:
        rollout.verdicts = verdicts.get(rollout.pk, [])
    history = list(
        _rollouts().filter(state__in=TERMINAL_STATES).order_by("-finished_at", "-id")[:HISTORY_ROWS]
    )
    frozen = sorted(freezes_at().values(), key=lambda f: (f.environment.order, f.environment.slug))
    return {"active": active, "history": history, "frozen": frozen}


@login_required
def board(request: HttpRequest) -> HttpResponse:
    """Every team's active rollouts (live) and the most recent finished ones."""
    return render(request, "deployments/board.html", board_context())


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
