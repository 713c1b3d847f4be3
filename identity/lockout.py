"""What a locked-out login sees (429 with Retry-After) and the audit event it leaves."""

from __future__ import annotations

import math
from typing import Any

from axes.helpers import get_cool_off
from axes.signals import user_locked_out
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from controlplane.events import publish
from identity.choices import AccountEvent


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """The login page's look, saying for how long, with the standard 429 header."""
    cool_off = get_cool_off(request)
    seconds = math.ceil(cool_off.total_seconds()) if cool_off else 0
    context = {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": max(1, math.ceil(seconds / 60)),
    }
    response = render(request, "registration/locked_out.html", context, status=429)
    if seconds:
        response["Retry-After"] = str(seconds)
    return response


def _record(sender: Any, request: HttpRequest, username: str | None, ip_address: str,
            **kwargs: Any) -> None:  # fmt: skip
    # Axes signals every refused attempt of a lockout; the audit log wants the one that began it.
    if getattr(request, "axes_failures_since_start", None) != settings.AXES_FAILURE_LIMIT:
        return
    publish(
        AccountEvent.LOCKED_OUT,
        actor="anonymous",
        message=f"login for {username or '(no username)'} from {ip_address} locked out after "
        f"{settings.AXES_FAILURE_LIMIT} failures",
        payload={"username": username or "", "ip_address": ip_address},
    )


def connect() -> None:
    user_locked_out.connect(_record, dispatch_uid="identity.lockout")
