"""Circuit dashboard pages: the grid of every circuit, a circuit's page, override controls."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from catalog.choices import Scope
from catalog.models import Environment, Service, Team
from catalog.permissions import Access
from circuits import fragments, history, overrides
from circuits.choices import STATES_BY_SEVERITY, AggregateState, OverrideState
from circuits.models import Circuit, CircuitOverride

TILES_PER_PAGE = 120
DURATIONS = [
    (15, "15 minutes"),
    (60, "1 hour"),
    (240, "4 hours"),
    (1440, "1 day"),
    (10080, "7 days"),
]


@login_required
def grid(request: HttpRequest) -> HttpResponse:
    """Every circuit as a tile, worst first, filtered by team, service, environment and state."""
    queryset = fragments.with_relations(Circuit.objects.all())
    lookups = {
        "team": "service__team__slug",
        "service": "service__slug",
        "environment": "environment__slug",
        "state": "state",
    }
    applied = {}
    for param, lookup in lookups.items():
        value = request.GET.get(param, "").strip()
        if value:
            queryset = queryset.filter(**{lookup: value})
            applied[param] = value
    queryset = queryset.order_by("-severity", "service__slug", "environment__order", "name")
    page = Paginator(queryset, TILES_PER_PAGE).get_page(request.GET.get("page"))
    counts = dict(queryset.order_by().values_list("state").annotate(n=Count("id")))
    context = {
        "page": page,
        "tiles": fragments.tiles(list(page.object_list)),
        "filters": applied,
        "counts": [
            (s, AggregateState(s).label, counts[s]) for s in STATES_BY_SEVERITY if counts.get(s)
        ],
        "teams": Team.objects.only("slug", "name"),
        # the service filter is a text field: a list of every service was 10,000 options
        # (~400 KB) at 10,000 services (bench.dashboard)
        "environments": Environment.objects.all(),
        "states": AggregateState.choices,
    }
    return render(request, "circuits/grid.html", context)


class OverrideForm(forms.Form):
    """Force this circuit open or closed, here or in every environment, for a while, and say why."""

    state = forms.ChoiceField(choices=OverrideState.choices)
    everywhere = forms.BooleanField(
        required=False, label="In every environment (not only this one)"
    )
    minutes = forms.TypedChoiceField(choices=DURATIONS, coerce=int, initial=60, label="For")
    reason = forms.CharField(max_length=500, widget=forms.TextInput)


@login_required
def circuit_detail(request: HttpRequest, pk: int) -> HttpResponse:
    circuit = get_object_or_404(fragments.with_relations(Circuit.objects), pk=pk)
    return render(
        request,
        "circuits/circuit.html",
        {
            "page": fragments.circuit_page(circuit),
            "history": history.chart_series(circuit, hours=24),
            "can_override": _may_override(request, circuit.service),
            "form": OverrideForm(),
        },
    )


@login_required
@require_POST
def set_override(request: HttpRequest, pk: int) -> HttpResponse:
    circuit = get_object_or_404(fragments.with_relations(Circuit.objects), pk=pk)
    if not _may_override(request, circuit.service):
        raise PermissionDenied("only the owning team's owners and deployers may force a circuit")
    form = OverrideForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items())
        messages.error(request, f"Override not set: {errors}")
        return _back(request, circuit.get_absolute_url())
    override = overrides.set_override(
        service=circuit.service,
        circuit_name=circuit.name,
        environment=None if form.cleaned_data["everywhere"] else circuit.environment,
        state=form.cleaned_data["state"],
        reason=form.cleaned_data["reason"],
        expires_at=timezone.now() + timedelta(minutes=form.cleaned_data["minutes"]),
        actor=request.user,
    )
    messages.success(request, f"{circuit.name} is now {override.get_state_display().lower()}.")
    return _back(request, circuit.get_absolute_url())


@login_required
@require_POST
def clear_override(request: HttpRequest, pk: int) -> HttpResponse:
    override = get_object_or_404(CircuitOverride.objects.select_related("service__team"), pk=pk)
    if not _may_override(request, override.service):
        raise PermissionDenied("only the owning team's owners and deployers may lift an override")
    if overrides.clear_override(override, actor=request.user, why="lifted by hand"):
        messages.success(request, f"Override on {override.circuit_name} lifted.")
    else:
        messages.info(request, "That override was already lifted.")
    circuit = Circuit.objects.filter(service=override.service, name=override.circuit_name).first()
    return _back(request, circuit.get_absolute_url() if circuit else reverse("circuits:grid"))


def _may_override(request: HttpRequest, service: Service) -> bool:
    return Access.of(request).can(Scope.DEPLOY, service.team, service)


def _back(request: HttpRequest, url: str) -> HttpResponse:
    if getattr(request, "htmx", False):
        # The live push has already changed the page for everyone; reload shows messages too.
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return HttpResponseRedirect(url)
