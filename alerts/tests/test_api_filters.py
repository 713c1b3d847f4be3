"""The alerts lists filter by the names the rest of the API uses (`team`, `service`, ...);
an unknown slug or choice answers 400, never another team's rows or an empty list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from alerts.choices import ChannelKind, RuleKind, Severity
from alerts.models import Channel, Route, Rule, Silence
from alerts.tests.permission_matrix import an_incident
from catalog.tests.matrix import Case

pytestmark = pytest.mark.django_db


def listed(api_as: Any, query: str) -> list[dict[str, Any]]:
    response = api_as("viewer").get(f"/api/v1/alerts/{query}")
    assert response.status_code == 200, response.json()
    return list(response.json()["results"])


@pytest.fixture
def alerting(world: Any) -> dict[str, Any]:
    """Each team with a rule, a channel, a route and a silence; payments with an incident."""
    # Without the rules every team starts with (alerts/defaults.py), each filter matches one.
    Rule.objects.all().delete()
    made: dict[str, Any] = {}
    for team, kind, severity in (
        (world.team, ChannelKind.WEBHOOK, Severity.PAGE),
        (world.other_team, ChannelKind.EMAIL, Severity.TICKET),
    ):
        rule = Rule.objects.create(
            team=team,
            name=f"{team.slug} down",
            kind=RuleKind.SERVICE_STATE,
            severity=severity,
            service=world.service if team == world.team else world.other_service,
            environment=world.production if team == world.team else None,
            enabled=team == world.team,
        )
        channel = Channel.objects.create(
            team=team, name=f"{team.slug} on call", kind=kind, enabled=team == world.team
        )
        made[team.slug] = {
            "rule": rule,
            "channel": channel,
            "route": Route.objects.create(team=team, severity=severity, channel=channel),
            "silence": Silence.objects.create(
                team=team,
                ends_at=timezone.now() + timedelta(hours=1 if team == world.team else -1),
                starts_at=timezone.now() - timedelta(hours=2),
                comment="deploying",
                created_by_label="owner",
            ),
        }
    # A payments incident, about checkout in production, firing with severity page.
    case = Case(world=world)
    an_incident(case)
    made["incident"] = case.made["incident"]
    return made


def test_rules_filter_by_team_leaving_the_other_teams_rules_out(
    api_as: Any, alerting: dict[str, Any]
) -> None:
    # given a rule of each team
    # when one team's are asked for
    rules = listed(api_as, "rules?team=search")
    # then only that team's rule answers
    assert [(r["id"], r["team"]) for r in rules] == [(alerting["search"]["rule"].pk, "search")]


@pytest.mark.parametrize(
    ("query", "team"),
    [
        ("service=checkout", "payments"),
        ("environment=production", "payments"),
        ("severity=ticket&kind=service_state", "search"),
        ("enabled=false&team=search", "search"),
    ],
)
def test_rules_filter_by_service_environment_kind_severity_and_enabled(
    api_as: Any, alerting: dict[str, Any], query: str, team: str
) -> None:
    # when
    rules = listed(api_as, f"rules?{query}")
    # then the one rule that matches answers
    assert [r["id"] for r in rules] == [alerting[team]["rule"].pk]


@pytest.mark.parametrize(
    ("query", "team"),
    [("team=search", "search"), ("kind=webhook", "payments"), ("enabled=false", "search")],
)
def test_channels_filter_by_team_kind_and_enabled(
    api_as: Any, alerting: dict[str, Any], query: str, team: str
) -> None:
    assert [c["id"] for c in listed(api_as, f"channels?{query}")] == [alerting[team]["channel"].pk]


def test_routes_filter_by_team_severity_and_channel(api_as: Any, alerting: dict[str, Any]) -> None:
    channel = alerting["search"]["channel"].pk
    for query in ("team=search", "severity=ticket", f"channel={channel}"):
        assert [r["id"] for r in listed(api_as, f"routes?{query}")] == [
            alerting["search"]["route"].pk
        ], query


def test_silences_filter_by_team_and_by_whether_they_mute_now(
    api_as: Any, alerting: dict[str, Any]
) -> None:
    # given a silence muting now (payments) and one that ended (search)
    # when / then
    assert [s["id"] for s in listed(api_as, "silences?team=search")] == [
        alerting["search"]["silence"].pk
    ]
    assert [s["id"] for s in listed(api_as, "silences?active=true")] == [
        alerting["payments"]["silence"].pk
    ]
    assert [s["id"] for s in listed(api_as, "silences?active=false")] == [
        alerting["search"]["silence"].pk
    ]


def test_incidents_filter_by_team_service_environment_state_and_severity(
    api_as: Any, alerting: dict[str, Any]
) -> None:
    query = "team=payments&service=checkout&environment=production&state=firing&severity=page"
    assert [i["id"] for i in listed(api_as, f"incidents?{query}")] == [alerting["incident"].pk]
    assert listed(api_as, "incidents?team=search") == []


@pytest.mark.parametrize(
    "query",
    [
        "rules?team=nobody",
        "channels?team=nobody",
        "routes?team=nobody",
        "silences?team=nobody",
        "incidents?team=nobody",
        "incidents?service=nothing",
        "rules?kind=gut_feeling",
        "routes?channel=999999",
    ],
)
def test_an_unknown_slug_or_choice_answers_400_naming_the_parameter(
    api_as: Any, alerting: dict[str, Any], query: str
) -> None:
    # when
    response = api_as("viewer").get(f"/api/v1/alerts/{query}")
    # then
    assert response.status_code == 400
    name = query.split("?")[1].split("=")[0]
    assert set(response.json()["error"]["fields"]) == {name}
