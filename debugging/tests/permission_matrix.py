"""Debugging's rows of the permission matrix (see catalog/tests/matrix.py, docs/api.md).

Runtime config and debug windows are per service: the service's team reads and writes
(tokens by scope), everyone signed in reads; debug windows are opened and closed with the
deploy scope; instances report applied levels with a report token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from catalog.tests.matrix import PERSONAS, Case, Row, allow, read
from debugging.models import DebugWindow

WRITERS = ("owner", "admin", "token:write")
ACTORS = ("deployer", "owner", "admin", "token:deploy")
REPORTERS = ("token:report",)


def service_env(case: Case) -> dict[str, Any]:
    return {"service": "checkout", "environment": "production"}


def service_only(case: Case) -> dict[str, Any]:
    return {"service": "checkout"}


def a_window(case: Case) -> None:
    case.made["window"] = DebugWindow.objects.create(
        service=case.world.service,
        environment=case.world.production,
        logger="payments.client",
        level="DEBUG",
        method="client",
        reason="matrix",
        opened_by_label="matrix",
        ends_at=timezone.now() + timedelta(minutes=15),
    )


def window_pk(case: Case) -> dict[str, Any]:
    return {"pk": case.made["window"].pk}


def config_change(case: Case) -> dict[str, Any]:
    return {"entries": {"feature-x": {"kind": "flag", "value": True}}}


PERMISSION_MATRIX = [
    Row("runtime-config", "GET", read(), kwargs=service_env),
    # (the body is refused on its merits: the rule let the writers through)
    Row(
        "runtime-config", "PATCH", allow(*WRITERS, status=400), kwargs=service_env,
        body=config_change,
    ),
    Row("runtime-config-versions", "GET", read(), kwargs=service_env),
    Row("runtime-config-revert", "POST", allow(*WRITERS, status=400), kwargs=service_env),
    Row("debug-delivery", "GET", read(), kwargs=service_only),
    Row("debug-delivery", "PATCH", allow(*WRITERS), kwargs=service_only, body=lambda case: {}),
    Row("debug-windows", "GET", read()),
    # An empty body names no service, so whose window it is is unknown: 400 before the team.
    Row(
        "debug-windows", "POST",
        allow(*ACTORS, status=400, viewer=400, outsider=400, token_foreign=400),
        body=lambda case: {},
    ),
    Row("debug-window", "GET", read(), kwargs=window_pk, setup=a_window),
    Row("debug-window-close", "POST", allow(*ACTORS), kwargs=window_pk, setup=a_window),
    # An empty report names no instance: 400 for whoever may report at all.
    Row(
        "applied-levels", "POST",
        allow(
            *REPORTERS, status=400, viewer=400, deployer=400, owner=400, outsider=400,
            admin=400, token_foreign=400,
        ),
        body=lambda case: {},
    ),
    # The instance-facing long-poll: report tokens of the service's team (docs/debugging.md).
    # Instances only: a person's session is not a way in (401). The long-poll reads tokens
    # on its own database threads, which cannot see this harness's uncommitted tokens, so
    # here every persona gets 401; the real rule (200 for the team's report tokens, 403 for
    # other tokens, 401 without one) is played on a real uvicorn in test_config_delivery.py.
    Row(
        "config-watch", "GET", {persona: 401 for persona in PERSONAS},
        kwargs=service_env, query="wait=0s",
    ),
]
