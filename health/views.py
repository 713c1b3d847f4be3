"""Health dashboard pages: the overview grid, a service's health, an instance's check, and
the check spec form (edit, "test it now", per-instance overrides)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from catalog.choices import LIVE_LIFECYCLES, Scope
from catalog.models import Environment, Instance, Service, Team
from catalog.permissions import Access
from controlplane import changes
from health import forms as spec_forms
from health import overview as overview_queries
from health import rollups, trial
from health.api.serializers import CheckSpecSerializer, MaintenanceWindowSerializer
from health.choices import CHECK_SPEC_EVENTS, MAINTENANCE_EVENTS, ServiceStatus
from health.maintenance import in_maintenance
from health.models import (
    CheckSpec,
    Heartbeat,
    InstanceCheck,
    MaintenanceWindow,
    ServiceHealth,
    Transition,
)
from health.rollups import day_summaries

HISTORY_RANGES = ("1h", "24h", "7d", "30d")


def _environment(request: HttpRequest, environments: list[Environment]) -> Environment | None:
    wanted = request.GET.get("env", "")
    return next(
        (e for e in environments if e.slug == wanted), environments[0] if environments else None
    )


def _bad_filter(field: str, reason: str) -> HttpResponse:
    # Plain text: the message quotes what the user sent.
    return HttpResponseBadRequest(
        f"{field}: {reason}. Fix or remove it from the address.",
        content_type="text/plain; charset=utf-8",
    )


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    """One environment's services, worst first, a page at a time, with counts per state.

    The same few queries for any fleet size: the counts and the page are done by the
    database (health/overview.py), and only the page's services are loaded.
    """
    environments = list(Environment.objects.all())
    environment = _environment(request, environments)
    teams = list(Team.objects.only("slug", "name"))
    filters = {k: request.GET.get(k, "").strip() for k in ("team", "state", "q")}
    team = next((t for t in teams if t.slug == filters["team"]), None)
    if filters["team"] and team is None:
        return _bad_filter("team", f"no team has the slug {filters['team']!r}")
    if filters["state"] and filters["state"] not in ServiceStatus.values:
        return _bad_filter(
            "state", f"{filters['state']!r} is not one of {', '.join(ServiceStatus.values)}"
        )
    if len(filters["q"]) > overview_queries.MAX_QUERY_LENGTH:
        return _bad_filter("q", f"at most {overview_queries.MAX_QUERY_LENGTH} characters")
    context: dict[str, Any] = {
        "environments": environments,
        "environment": environment,
        "teams": teams,
        "filters": filters,
        "states": ServiceStatus.choices,
    }
    if environment is None:
        return render(request, "health/overview.html", context)
    scope = overview_queries.Scope(environment, team, filters["q"])
    page = Paginator(
        overview_queries.worst_first(scope, filters["state"]), overview_queries.TILES_PER_PAGE
    ).get_page(request.GET.get("page"))
    services = list(page.object_list)
    context.update(
        overview_queries.state_counts(scope),
        page=page,
        grid=overview_queries.tiles_by_team(services, environment),
        # Every tile's uptime and sparkline in one query (the live tile leaves them be).
        days=day_summaries((s.pk, environment.pk) for s in services),
    )
    return render(request, "health/overview.html", context)


@login_required
def service_page(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    environments = list(Environment.objects.all())
    environment = _environment(request, environments)
    context: dict[str, Any] = {
        "service": service,
        "environments": environments,
        "environment": environment,
    }
    if environment is not None:
        health = ServiceHealth.objects.filter(service=service, environment=environment).first()
        health = health or ServiceHealth(service=service, environment=environment)
        health.service, health.environment = service, environment
        checks = (
            InstanceCheck.objects.select_related(
                "instance", "instance__service", "instance__environment"
            )
            .filter(instance__service=service, instance__environment=environment)
            .order_by("instance__host", "instance__port")
        )
        context.update(
            health=health,
            page=Paginator(checks, 100).get_page(request.GET.get("page")),
            spec=CheckSpec.objects.filter(service=service).first()
            or CheckSpec.default_for(service),
            uptime=rollups.uptime(service.pk, environment.pk),
            transitions=Transition.objects.filter(service=service, environment=environment)[:50],
            heartbeats=Heartbeat.objects.filter(service=service).select_related("service"),
            windows=maintenance_rows(
                service,
                list(
                    MaintenanceWindow.objects.filter(service=service).select_related("environment")
                ),
                environments,
            ),
            in_maintenance=in_maintenance(service.pk, environment.pk),
            ranges=HISTORY_RANGES,
        )
        if _may_edit(request, service):
            context["maintenance_form"] = {**_maintenance_form(), "environments": environments}
            instances = _instances_offered(service)
            here = next((i.pk for i in instances if i.environment_id == environment.pk), None)
            context["check_form"] = _form(
                spec_forms.values_of(context["spec"]),
                {},
                action=reverse("health:check", args=[service.slug]),
                instances=instances,
                chosen=here or (instances[0].pk if instances else None),
            )
    return render(request, "health/service.html", context)


@login_required
def instance_page(request: HttpRequest, pk: int) -> HttpResponse:
    instance = get_object_or_404(
        Instance.objects.select_related("service", "service__team", "environment"), pk=pk
    )
    check = InstanceCheck.objects.select_related("instance").filter(instance=instance).first()
    override = CheckSpec.objects.filter(instance=instance).first()
    spec = override or CheckSpec.objects.filter(service=instance.service).first()
    return render(
        request,
        "health/instance.html",
        {
            "instance": instance,
            "check": check,
            "spec": spec or CheckSpec.default_for(instance.service),
            "overridden": override is not None,
            "can_edit": _may_edit(request, instance.service),
            "transitions": Transition.objects.filter(instance=instance)[:50],
        },
    )


# -- the check spec form -----------------------------------------------------------------

# How many instances "test it now" offers to choose from (a service's first ones by
# environment and address); any one of them tells whether the spec fits the service.
INSTANCES_OFFERED = 100
# The serializer's and spec_errors' names for what is not one field of the form.
FORM_WIDE_ERRORS = ("service", "non_field_errors")
TEST, SAVE, REMOVE = "test", "save", "remove"


def _may_edit(request: HttpRequest, service: Service) -> bool:
    """The API's rule for check specs: write scope, i.e. an owner of the service's team."""
    return Access.of(request).can(Scope.WRITE, service.team, service)


def _refused(service: Service) -> HttpResponse:
    return HttpResponseForbidden(
        f"Only owners of team {service.team.slug} (or platform admins) may change how "
        f"{service.slug} is checked.",
        content_type="text/plain; charset=utf-8",
    )


def _instances_offered(service: Service) -> list[Instance]:
    return list(
        Instance.objects.filter(service=service, lifecycle__in=LIVE_LIFECYCLES)
        .select_related("environment")
        .order_by("environment__order", "host", "port")[:INSTANCES_OFFERED]
    )


def _reasons(errors: Any) -> dict[str, str]:
    """A serializer's errors as {field: one sentence}, conditions counted from 1 as shown."""
    flat: dict[str, str] = {}
    for name, value in (errors or {}).items():
        messages_of = value if isinstance(value, list) else [value]
        text = "; ".join(str(m) for m in messages_of)
        if name == "json_conditions":
            text = re.sub(r"item (\d+):", lambda m: f"condition {int(m.group(1)) + 1}:", text)
        flat[str(name)] = text
    return flat


def _form(
    values: dict[str, Any],
    errors: dict[str, str],
    *,
    action: str,
    instances: list[Instance],
    chosen: int | None,
) -> dict[str, Any]:
    """The template's view of the form: fields grouped, each with its value and error."""
    groups = [
        (
            title,
            [
                {"field": f, "value": values.get(f.name, ""), "error": errors.get(f.name, "")}
                for f in fields
            ],
        )
        for title, fields in spec_forms.GROUPS
    ]
    blank = {"path": "", "op": "eq", "value": ""}
    return {
        "groups": groups,
        "conditions": [*values["conditions"], *[blank] * spec_forms.BLANK_CONDITION_ROWS],
        "ops": spec_forms.OPS,
        "errors": errors,
        "form_wide": "; ".join(errors[k] for k in FORM_WIDE_ERRORS if k in errors),
        "action": action,
        "instances": instances,
        "chosen": chosen,
    }


def _chosen_instance(request: HttpRequest, instances: list[Instance]) -> Instance | None:
    wanted = request.POST.get("instance", "")
    return next((i for i in instances if str(i.pk) == wanted), None)


def _post_spec(
    request: HttpRequest,
    *,
    current: CheckSpec | None,
    target: dict[str, Any],
    instances: list[Instance],
    action: str,
    page: dict[str, Any],
) -> HttpResponse | bool:
    """Test or save the posted spec: whether it was saved (the caller redirects), or the
    page again: with the errors (400), or with the probe's result (nothing saved)."""
    values = spec_forms.values_posted(request.POST)
    body, shape_errors = spec_forms.body_of(values)
    serializer = (
        CheckSpecSerializer(current, data=body, partial=True)
        if current is not None
        else CheckSpecSerializer(data={**body, **target})
    )
    serializer.is_valid()
    errors = {**_reasons(serializer.errors), **shape_errors}
    chosen = _chosen_instance(request, instances)
    wanted = request.POST.get("action", SAVE)
    if wanted == TEST and chosen is None:
        errors["instance"] = "choose one of this service's instances to probe"
    form = _form(
        values, errors, action=action, instances=instances, chosen=chosen.pk if chosen else None
    )
    context = {**page, "f": form, "errors": errors}
    if errors:
        return render(request, "health/check.html", context, status=400)
    access = Access.of(request)
    if wanted == TEST:
        assert chosen is not None
        trial_spec = CheckSpec(
            **{
                k: v
                for k, v in serializer.validated_data.items()
                if k not in ("service", "instance")
            }
        )
        context.update(result=trial.probe_once(trial_spec, chosen), tested=chosen)
        return render(request, "health/check.html", context)
    if current is not None and all(
        getattr(current, k) == v for k, v in serializer.validated_data.items()
    ):
        # The spec's updated_at would differ, and an update would publish that alone.
        messages.info(request, "Nothing changed; the check is as it was.")
        return False
    try:
        if current is not None:
            changes.update(serializer, actor=access, events=CHECK_SPEC_EVENTS)
        else:
            changes.create(
                serializer,
                actor=access,
                events=CHECK_SPEC_EVENTS,
                conflict="someone saved this check at the same time; reload and try again",
            )
    except changes.Conflict as conflict:
        form["form_wide"] = context["errors"] = str(conflict)
        return render(request, "health/check.html", context, status=409)
    return True


@login_required
@require_http_methods(["GET", "POST"])
def check_edit(request: HttpRequest, slug: str) -> HttpResponse:
    """A service's check spec: edit it, probe one instance with it, save it."""
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    if not _may_edit(request, service):
        return _refused(service)
    current = CheckSpec.objects.filter(service=service).first()
    instances = _instances_offered(service)
    action = reverse("health:check", args=[service.slug])
    env = request.POST.get("env") or request.GET.get("env", "")
    back = service_check_url(service, env)
    page = {"service": service, "instance": None, "back": back, "env": env}
    if request.method == "GET":
        values = spec_forms.values_of(current or CheckSpec.default_for(service))
        chosen = instances[0].pk if instances else None
        form = _form(values, {}, action=action, instances=instances, chosen=chosen)
        return render(request, "health/check.html", {**page, "f": form})
    response = _post_spec(
        request,
        current=current,
        target={"service": service.slug},
        instances=instances,
        action=action,
        page=page,
    )
    if isinstance(response, HttpResponse):
        return response
    if response:
        messages.success(
            request, f"{service.slug}'s check saved; its instances use it from their next probe."
        )
    return redirect(back)


@login_required
@require_http_methods(["GET", "POST"])
def instance_check_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """One instance's override of its service's check: edit, test, save or remove it."""
    instance = get_object_or_404(
        Instance.objects.select_related("service", "service__team", "environment"), pk=pk
    )
    service = instance.service
    if not _may_edit(request, service):
        return _refused(service)
    override = CheckSpec.objects.filter(instance=instance).first()
    back = reverse("health:instance", args=[instance.pk])
    if request.method == "POST" and request.POST.get("action") == REMOVE:
        if override is not None:
            changes.delete(override, actor=Access.of(request), events=CHECK_SPEC_EVENTS)
            messages.success(request, f"{instance.address} follows {service.slug}'s check again.")
        return redirect(back)
    action = reverse("health:instance-check", args=[instance.pk])
    page = {"service": service, "instance": instance, "back": back, "overridden": override}
    if request.method == "GET":
        base = override or CheckSpec.objects.filter(service=service).first()
        values = spec_forms.values_of(base or CheckSpec.default_for(service))
        form = _form(values, {}, action=action, instances=[instance], chosen=instance.pk)
        return render(request, "health/check.html", {**page, "f": form})
    response = _post_spec(
        request,
        current=override,
        target={"instance": instance.pk},
        instances=[instance],
        action=action,
        page=page,
    )
    if isinstance(response, HttpResponse):
        return response
    if response:
        messages.success(request, f"{instance.address} now has its own check.")
    return redirect(back)


def service_check_url(service: Service, env: str = "") -> str:
    """The service page's check, on the environment tab the form was opened from."""
    query = f"?env={env}" if Environment.objects.filter(slug=env).exists() else ""
    return reverse("health:service", args=[service.slug]) + query + "#check-spec"


# -- maintenance windows -----------------------------------------------------------------

ONE_OFF, RECURRING = "one-off", "recurring"
MAINTENANCE_FIELDS = (
    "kind",
    "environment",
    "reason",
    "starts_at",
    "ends_at",
    "cron",
    "duration_minutes",
    "timezone",
)


def maintenance_url(service: Service, environment: Environment | None = None) -> str:
    """The service page's windows, in the window's environment when it has one."""
    query = f"?env={environment.slug}" if environment is not None else ""
    return reverse("health:service", args=[service.slug]) + query + "#maintenance"


def _maintenance_form(
    values: dict[str, Any] | None = None, errors: dict[str, str] | None = None
) -> dict[str, Any]:
    now = timezone.now().replace(second=0, microsecond=0)
    defaults = {
        "kind": ONE_OFF,
        "environment": "",
        "reason": "",
        "starts_at": now.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "cron": "",
        "duration_minutes": "60",
        "timezone": "UTC",
    }
    return {"values": {**defaults, **(values or {})}, "errors": errors or {}}


def _local_time(text: str, zone_name: str) -> str:
    """A datetime-local value read in the window's time zone, as ISO 8601 with its offset
    (left as typed when either part is unreadable: the serializer then says which)."""
    try:
        naive = datetime.fromisoformat(text)
        zone = ZoneInfo(zone_name or "UTC")
    except (ValueError, ZoneInfoNotFoundError):
        return text
    if naive.tzinfo is not None:
        return text
    return naive.replace(tzinfo=zone).isoformat()


def _maintenance_body(service: Service, values: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service": service.slug,
        "environment": values["environment"] or None,
        "reason": values["reason"],
        "timezone": values["timezone"] or "UTC",
    }
    if values["kind"] == RECURRING:
        body["cron"] = values["cron"]
        body["duration_minutes"] = values["duration_minutes"] or None
    else:
        for name in ("starts_at", "ends_at"):
            body[name] = _local_time(values[name], body["timezone"]) if values[name] else None
    return body


@login_required
@require_POST
def maintenance_create(request: HttpRequest, slug: str) -> HttpResponse:
    """A new maintenance window for a service: one-off (start, end) or recurring (cron)."""
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    if not _may_edit(request, service):
        return _refused(service)
    values = {k: request.POST.get(k, "").strip() for k in MAINTENANCE_FIELDS}
    serializer = MaintenanceWindowSerializer(data=_maintenance_body(service, values))
    if not serializer.is_valid():
        errors = _reasons(serializer.errors)
        form = {
            **_maintenance_form(values, errors),
            "environments": list(Environment.objects.all()),
        }
        return render(
            request, "health/maintenance.html", {"service": service, "m": form}, status=400
        )
    user = request.user
    window = changes.create(
        serializer,
        actor=Access.of(request),
        events=MAINTENANCE_EVENTS,
        created_by=user if user.is_authenticated else None,
    )
    assert isinstance(window, MaintenanceWindow)
    messages.success(request, f"Maintenance window for {service.slug} created.")
    return redirect(maintenance_url(service, window.environment))


@login_required
@require_POST
def maintenance_end(request: HttpRequest, pk: int) -> HttpResponse:
    """End a window early: an active one-off window ends now; a recurring or future one is
    deleted (it has nothing to cut short)."""
    window = get_object_or_404(
        MaintenanceWindow.objects.select_related("service", "service__team", "environment"), pk=pk
    )
    service = window.service
    if not _may_edit(request, service):
        return _refused(service)
    access = Access.of(request)
    now = timezone.now()
    if not window.is_recurring and window.is_active_at(now):
        serializer = MaintenanceWindowSerializer(
            window, data={"ends_at": now.isoformat()}, partial=True
        )
        serializer.is_valid(raise_exception=True)  # now is after an active window's start
        changes.update(serializer, actor=access, events=MAINTENANCE_EVENTS)
        messages.success(request, f"Maintenance window {window.pk} ended now.")
    else:
        changes.delete(window, actor=access, events=MAINTENANCE_EVENTS)
        messages.success(request, f"Maintenance window {window.pk} deleted.")
    return redirect(maintenance_url(service, window.environment))


def maintenance_rows(
    service: Service, windows: list[MaintenanceWindow], environments: list[Environment]
) -> list[dict[str, Any]]:
    """Each window with what it covers (environments, live instances) and its state now."""
    live = dict(
        Instance.objects.filter(service=service, lifecycle__in=LIVE_LIFECYCLES)
        .values_list("environment_id")
        .annotate(n=Count("id"))
        .values_list("environment_id", "n")
    )
    now = timezone.now()
    rows = []
    for window in windows:
        covered = [e for e in environments if window.covers(e.pk)]
        if window.is_active_at(now):
            state = "active"
        elif window.is_recurring or (window.starts_at and window.starts_at > now):
            state = "scheduled"
        else:
            state = "ended"
        rows.append(
            {
                "window": window,
                "state": state,
                "environments": covered,
                "instances": sum(live.get(e.pk, 0) for e in covered),
                "next_start": _next_start(window, now) if window.is_recurring else None,
            }
        )
    return rows


def _next_start(window: MaintenanceWindow, now: datetime) -> datetime | None:
    try:
        local = now.astimezone(ZoneInfo(window.timezone))
        start: datetime = croniter(window.cron, local).get_next(datetime)
    except (ValueError, KeyError, ZoneInfoNotFoundError):
        return None
    return start
