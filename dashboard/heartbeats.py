"""A service's heartbeats on the dashboard: the list with a create form, and each one's page
(like Healthchecks.io's check page): its ping URL with copy-paste snippets, the last pings
with their exit codes and log tails, and edit, pause, resume and delete for the team's owners.

Creating and editing validate with the API's HeartbeatSerializer and save through
`controlplane.changes`; pausing and resuming are health's own functions, as the API's
`pause`/`resume` actions call them: the same checks and the same audited events."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from rest_framework import exceptions

from catalog.choices import Scope
from catalog.models import Environment, Service
from catalog.permissions import Access
from controlplane import changes
from dashboard import team_forms
from health import heartbeats
from health.api.serializers import HeartbeatSerializer
from health.choices import HEARTBEAT_EVENTS, HeartbeatStatus, ScheduleKind
from health.models import Heartbeat
from health.models.heartbeats import PINGS_KEPT

HEARTBEATS_SHOWN = 200
CONFLICT = "this service already has a heartbeat with that name in that environment"


class HeartbeatForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    environment = forms.ChoiceField(required=False, help_text="Empty: any environment.")
    schedule_kind = forms.ChoiceField(choices=ScheduleKind.choices, label="Schedule")
    period_seconds = forms.IntegerField(
        min_value=1,
        initial=86400,
        label="Period (seconds)",
        help_text="For a period schedule: 3600 is hourly, 86400 daily.",
    )
    cron = forms.CharField(
        required=False,
        max_length=100,
        label="Cron expression",
        help_text="For a cron schedule: five fields, like 0 3 * * *.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    timezone = forms.CharField(
        max_length=64, initial="UTC", label="Time zone", help_text="Of the cron expression."
    )
    grace_seconds = forms.IntegerField(
        min_value=0,
        initial=3600,
        label="Grace (seconds)",
        help_text="How late a ping may be before the heartbeat is down.",
    )

    def __init__(self, *args: Any, environments: list[Environment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["environment"].choices = [  # type: ignore[attr-defined]
            ("", "any environment"),
            *((e.slug, e.name) for e in environments),
        ]

    def api_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["environment"] = data["environment"] or None
        return data


def _initial(heartbeat: Heartbeat) -> dict[str, Any]:
    return {
        "name": heartbeat.name,
        "environment": heartbeat.environment.slug if heartbeat.environment else "",
        "schedule_kind": heartbeat.schedule_kind,
        "period_seconds": heartbeat.period_seconds,
        "cron": heartbeat.cron,
        "timezone": heartbeat.timezone,
        "grace_seconds": heartbeat.grace_seconds,
    }


def _service(slug: str) -> Service:
    return get_object_or_404(Service.objects.select_related("team"), slug=slug)


def _may_write(request: HttpRequest, service: Service) -> tuple[bool, Access]:
    access = Access.of(request)
    return access.can(Scope.WRITE, service.team, service), access


def _writer(request: HttpRequest, service: Service) -> Access:
    allowed, access = _may_write(request, service)
    if not allowed:
        raise PermissionDenied(access.why_not(Scope.WRITE, service.team, service))
    return access


def snippets(heartbeat: Heartbeat, url: str) -> list[tuple[str, str, str]]:
    """(id, title, text) of the copy-paste ways to ping this heartbeat."""
    schedule = heartbeat.cron if heartbeat.schedule_kind == ScheduleKind.CRON else "0 3 * * *"
    curl = "curl -fsS -m 10 --retry 5 -o /dev/null"
    job = "/usr/local/bin/your-job"
    return [
        ("curl", "curl (on success)", f"{curl} -X POST {url}"),
        (
            "crontab",
            "crontab line (exit code and the output's tail)",
            f'{schedule} out=$({job} 2>&1); {curl} --data-raw "$out" {url}/$?',
        ),
        (
            "log",
            "a message for the history only (state and lateness unchanged)",
            f'{curl} --data-raw "rotated 3 files" {url}/log',
        ),
        (
            "python",
            "Python",
            "import subprocess, urllib.request\n\n"
            f'result = subprocess.run(["{job}"], capture_output=True)\n'
            "log = (result.stdout + result.stderr)[-10000:]\n"
            "urllib.request.urlopen(\n"
            "    urllib.request.Request(\n"
            f'        f"{url}/{{result.returncode}}", data=log, method="POST"\n'
            "    ),\n"
            "    timeout=10,\n"
            ")\n",
        ),
        (
            "kubernetes",
            "Kubernetes CronJob",
            "apiVersion: batch/v1\n"
            "kind: CronJob\n"
            "metadata:\n"
            f"  name: {heartbeat.name}\n"
            "spec:\n"
            f'  schedule: "{schedule}"\n'
            + (
                f"  timeZone: {heartbeat.timezone}\n"
                if heartbeat.schedule_kind == ScheduleKind.CRON
                else ""
            )
            + "  jobTemplate:\n"
            "    spec:\n"
            "      template:\n"
            "        spec:\n"
            "          restartPolicy: Never\n"
            "          containers:\n"
            "            - name: job\n"
            "              image: your-image  # with sh and curl\n"
            '              command: ["/bin/sh", "-c"]\n'
            "              args:\n"
            "                - |\n"
            f"                  {curl} -X POST {url}/start\n"
            f"                  out=$({job} 2>&1); code=$?\n"
            '                  printf "%s" "$out" | tail -c 10000 |\n'
            f"                    {curl} --data-binary @- {url}/$code\n",
        ),
    ]


@login_required
def heartbeat_list(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service(slug)
    environments = list(Environment.objects.all())
    return _list(request, service, environments, None)


def _list(
    request: HttpRequest,
    service: Service,
    environments: list[Environment],
    form: HeartbeatForm | None,
    status: int = 200,
) -> HttpResponse:
    can_write, _ = _may_write(request, service)
    found = list(
        Heartbeat.objects.filter(service=service)
        .select_related("environment")
        .order_by("name", "id")[:HEARTBEATS_SHOWN]
    )
    context = {
        "service": service,
        "heartbeats": found,
        "can_write": can_write,
        "form": form or HeartbeatForm(environments=environments, prefix="hb"),
    }
    return render(request, "dashboard/heartbeats.html", context, status=status)


@login_required
@require_POST
def heartbeat_create(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service(slug)
    access = _writer(request, service)
    environments = list(Environment.objects.all())
    form = HeartbeatForm(request.POST, environments=environments, prefix="hb")
    if not form.is_valid():
        return _list(request, service, environments, form, 400)
    serializer = HeartbeatSerializer(data={**form.api_data(), "service": service.slug})
    renamed = {"service": NON_FIELD_ERRORS}
    if not serializer.is_valid():
        team_forms.errors_onto(form, serializer.errors, renamed)
        return _list(request, service, environments, form, 400)
    try:
        heartbeat = changes.create(
            serializer, actor=access, events=HEARTBEAT_EVENTS, conflict=CONFLICT
        )
    except changes.Conflict as conflict:
        form.add_error("name", str(conflict))
        return _list(request, service, environments, form, 409)
    messages.success(request, f"Heartbeat '{form.cleaned_data['name']}' created: ping it now.")
    return HttpResponseRedirect(_url(service, heartbeat.pk))


def _url(service: Service, pk: int) -> str:
    return reverse("dashboard:heartbeat", args=[service.slug, pk])


@login_required
def heartbeat_page(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    service = _service(slug)
    heartbeat = get_object_or_404(
        Heartbeat.objects.select_related("environment"), pk=pk, service=service
    )
    environments = list(Environment.objects.all())
    return _page(request, service, heartbeat, environments, None)


def _page(
    request: HttpRequest,
    service: Service,
    heartbeat: Heartbeat,
    environments: list[Environment],
    form: HeartbeatForm | None,
    status: int = 200,
) -> HttpResponse:
    heartbeat.service = service
    can_write, _ = _may_write(request, service)
    url = HeartbeatSerializer().get_ping_url(heartbeat)
    context = {
        # One query however many: the history is capped at PINGS_KEPT rows per heartbeat.
        "pings": list(heartbeat.pings.order_by("-n")[:PINGS_KEPT]),
        "pings_kept": PINGS_KEPT,
        "service": service,
        "heartbeat": heartbeat,
        "ping_url": url,
        "snippets": snippets(heartbeat, url),
        "can_write": can_write,
        "paused": heartbeat.status == HeartbeatStatus.PAUSED,
        "form": form
        or HeartbeatForm(
            initial=_initial(heartbeat), environments=environments, prefix=f"hb{heartbeat.pk}"
        ),
    }
    return render(request, "dashboard/heartbeat.html", context, status=status)


@login_required
@require_POST
def heartbeat_edit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    service = _service(slug)
    access = _writer(request, service)
    heartbeat = get_object_or_404(
        Heartbeat.objects.select_related("environment", "service"), pk=pk, service=service
    )
    environments = list(Environment.objects.all())
    form = HeartbeatForm(request.POST, environments=environments, prefix=f"hb{pk}")
    if not form.is_valid():
        return _page(request, service, heartbeat, environments, form, 400)
    data = form.api_data()
    if data["schedule_kind"] != ScheduleKind.CRON and not data["cron"]:
        data.pop("cron")  # the API refuses a cron on a period schedule, even an empty one
    serializer = HeartbeatSerializer(heartbeat, data=data, partial=True)
    if not serializer.is_valid():
        team_forms.errors_onto(form, serializer.errors, {"service": NON_FIELD_ERRORS})
        return _page(request, service, heartbeat, environments, form, 400)
    try:
        changes.update(serializer, actor=access, events=HEARTBEAT_EVENTS, conflict=CONFLICT)
    except (changes.Conflict, exceptions.ValidationError) as conflict:
        form.add_error("name", str(conflict))
        return _page(request, service, heartbeat, environments, form, 409)
    messages.success(request, f"Heartbeat '{heartbeat.name}' saved.")
    return HttpResponseRedirect(_url(service, heartbeat.pk))


@login_required
@require_POST
def heartbeat_pause(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    return _toggle(request, slug, pk, pause=True)


@login_required
@require_POST
def heartbeat_resume(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    return _toggle(request, slug, pk, pause=False)


def _toggle(request: HttpRequest, slug: str, pk: int, *, pause: bool) -> HttpResponse:
    service = _service(slug)
    access = _writer(request, service)
    heartbeat = get_object_or_404(
        Heartbeat.objects.select_related("environment", "service"), pk=pk, service=service
    )
    if pause:
        done = heartbeats.pause(heartbeat, actor=access)
        note = "paused: its silence no longer counts until you resume it or it pings"
    else:
        done = heartbeats.resume(heartbeat, actor=access)
        note = "resumed: it is due a period plus the grace from now"
    if done:
        messages.success(request, f"Heartbeat '{heartbeat.name}' {note}.")
    return HttpResponseRedirect(_url(service, heartbeat.pk))


@login_required
@require_POST
def heartbeat_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    service = _service(slug)
    access = _writer(request, service)
    heartbeat = get_object_or_404(
        Heartbeat.objects.select_related("environment", "service"), pk=pk, service=service
    )
    changes.delete(heartbeat, actor=access, events=HEARTBEAT_EVENTS)
    messages.success(request, f"Heartbeat '{heartbeat.name}' deleted.")
    return HttpResponseRedirect(reverse("dashboard:heartbeats", args=[service.slug]))
