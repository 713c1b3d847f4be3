"""The alerts rows of the permission matrix (see catalog/tests/matrix.py, docs/api.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from alerts.choices import ChannelKind, IncidentState, RuleKind, Severity
from alerts.models import Channel, Incident, Route, Rule, Silence, Subscription
from catalog.tests.matrix import Case, Row, allow, read

# Who may acknowledge, resolve and silence payments' incidents: its deployers and owners,
# platform admins, and a payments token with `deploy`.
RESPONDERS = ("deployer", "owner", "admin", "token:deploy")
# Who may change payments' rules, channels and routes: its owners, admins, a `write` token.
TEAM_WRITERS = ("owner", "admin", "token:write")


def an_incident(case: Case) -> None:
    world = case.world
    rule = Rule.objects.create(
        team=world.team,
        name="matrix",
        kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE,
        params={"states": ["down"]},
    )
    case.made["incident"] = Incident.objects.create(
        rule=rule,
        team=world.team,
        service=world.service,
        environment=world.production,
        subject_type="catalog.service",
        subject_id=str(world.service.pk),
        subject_label="checkout in production",
        dedup_key="matrix",
        severity=Severity.PAGE,
        state=IncidentState.FIRING,
        title="checkout in production is down",
    )


def a_silence(case: Case) -> None:
    case.made["silence"] = Silence.objects.create(
        team=case.world.team,
        comment="matrix",
        created_by_label="owner",
        ends_at=timezone.now() + timedelta(hours=1),
    )


def a_rule(case: Case) -> None:
    case.made["rule"] = Rule.objects.create(
        team=case.world.team, name="extra", kind=RuleKind.HEARTBEAT, params={"on": ["late"]}
    )


def a_channel(case: Case) -> None:
    # Port 9 (discard) refuses at once: "send test" answers 200 with ok false, quickly.
    case.made["channel"] = Channel.objects.create(
        team=case.world.team,
        name="hook",
        kind=ChannelKind.WEBHOOK,
        url="http://127.0.0.1:9/hook",
        secret="0123456789abcdef0123",
    )


def a_route(case: Case) -> None:
    a_channel(case)
    case.made["route"] = Route.objects.create(
        team=case.world.team, severity=Severity.PAGE, channel=case.made["channel"]
    )


def a_subscription(case: Case) -> None:
    a_channel(case)
    case.made["subscription"] = Subscription.objects.create(
        team=case.world.team, channel=case.made["channel"], events=["started"]
    )


def pk_of(name: str) -> Any:
    return lambda c: {"pk": c.made[name].pk}


def silence_body(case: Case) -> dict[str, Any]:
    return {
        "team": "payments",
        "matchers": [{"label": "service", "op": "=", "value": "checkout"}],
        "ends_at": (timezone.now() + timedelta(hours=2)).isoformat(),
        "comment": "database migration",
    }


PERMISSION_MATRIX = [
    Row("alert-incident-list", "GET", read()),
    Row("alert-incident-detail", "GET", read(), kwargs=pk_of("incident"), setup=an_incident),
    Row(
        "alert-incident-acknowledge",
        "POST",
        allow(*RESPONDERS),
        kwargs=pk_of("incident"),
        setup=an_incident,
    ),
    Row(
        "alert-incident-resolve",
        "POST",
        allow(*RESPONDERS),
        kwargs=pk_of("incident"),
        setup=an_incident,
    ),
    Row("alert-silence-list", "GET", read()),
    Row("alert-silence-list", "POST", allow(*RESPONDERS, status=201), body=silence_body),
    Row("alert-silence-detail", "GET", read(), kwargs=pk_of("silence"), setup=a_silence),
    Row(
        "alert-silence-detail",
        "DELETE",
        allow(*RESPONDERS, status=204),
        kwargs=pk_of("silence"),
        setup=a_silence,
    ),
    Row("alert-rule-list", "GET", read()),
    Row(
        "alert-rule-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        body=lambda c: {"team": "payments", "name": "late jobs", "kind": RuleKind.HEARTBEAT},
    ),
    Row("alert-rule-detail", "GET", read(), kwargs=pk_of("rule"), setup=a_rule),
    Row(
        "alert-rule-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=pk_of("rule"),
        setup=a_rule,
        body=lambda c: {"severity": Severity.INFO},
    ),
    Row(
        "alert-rule-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204),
        kwargs=pk_of("rule"),
        setup=a_rule,
    ),
    Row("alert-channel-list", "GET", read()),
    Row(
        "alert-channel-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        body=lambda c: {
            "team": "payments",
            "name": "ops",
            "kind": ChannelKind.WEBHOOK,
            "url": "https://hooks.example/ops",
            "secret": "0123456789abcdef0",
        },
    ),
    Row("alert-channel-detail", "GET", read(), kwargs=pk_of("channel"), setup=a_channel),
    Row(
        "alert-channel-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=pk_of("channel"),
        setup=a_channel,
        body=lambda c: {"enabled": False},
    ),
    Row(
        "alert-channel-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204),
        kwargs=pk_of("channel"),
        setup=a_channel,
    ),
    Row(
        "alert-channel-test", "POST", allow(*TEAM_WRITERS), kwargs=pk_of("channel"), setup=a_channel
    ),
    Row("alert-route-list", "GET", read()),
    Row(
        "alert-route-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        setup=a_channel,
        body=lambda c: {
            "team": "payments",
            "severity": Severity.TICKET,
            "channel": c.made["channel"].pk,
        },
    ),
    Row("alert-route-detail", "GET", read(), kwargs=pk_of("route"), setup=a_route),
    Row(
        "alert-route-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=pk_of("route"),
        setup=a_route,
        body=lambda c: {"group_wait_seconds": 0},
    ),
    Row(
        "alert-route-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204),
        kwargs=pk_of("route"),
        setup=a_route,
    ),
    Row("alert-subscription-list", "GET", read()),
    Row(
        "alert-subscription-list",
        "POST",
        allow(*TEAM_WRITERS, status=201),
        setup=a_channel,
        body=lambda c: {"team": "payments", "channel": c.made["channel"].pk},
    ),
    Row(
        "alert-subscription-detail",
        "GET",
        read(),
        kwargs=pk_of("subscription"),
        setup=a_subscription,
    ),
    Row(
        "alert-subscription-detail",
        "PATCH",
        allow(*TEAM_WRITERS),
        kwargs=pk_of("subscription"),
        setup=a_subscription,
        body=lambda c: {"events": ["started", "succeeded"]},
    ),
    Row(
        "alert-subscription-detail",
        "DELETE",
        allow(*TEAM_WRITERS, status=204),
        kwargs=pk_of("subscription"),
        setup=a_subscription,
    ),
]
