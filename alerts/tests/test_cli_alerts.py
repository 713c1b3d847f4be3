"""`signalbox silence ...` and `signalbox incident ...` against a live server, as an on-call
engineer at a terminal (or a deploy script muting its own noise) uses them."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import yaml
from django.utils import timezone

from alerts.models import Incident, Silence
from alerts.tests.test_api_and_pages import firing
from catalog.models import ApiToken
from deployments.tests.conftest import run_cli

pytestmark = pytest.mark.django_db(transaction=True)


def _env(world: Any, live_server: Any, scopes: list[str]) -> dict[str, str]:
    _, plain = ApiToken.issue(team=world.team, name="-".join(["cli", *scopes]), scopes=scopes)
    return {"SIGNALBOX_URL": live_server.url, "SIGNALBOX_TOKEN": plain}


def test_silence_add_list_and_expire(world: Any, live_server: Any) -> None:
    env = _env(world, live_server, ["read", "deploy"])
    code, out, err = run_cli(
        env,
        "silence",
        "add",
        "--team",
        "payments",
        "service=checkout",
        "severity=~page|ticket",
        "-d",
        "2h",
        "-c",
        "db migration",
        "-q",
    )
    assert code == 0, err
    silence = Silence.objects.get(pk=int(out.strip()))
    assert silence.matchers == [
        {"label": "service", "op": "=", "value": "checkout"},
        {"label": "severity", "op": "=~", "value": "page|ticket"},
    ]
    assert silence.comment == "db migration"
    assert abs(silence.ends_at - (timezone.now() + timedelta(hours=2))) < timedelta(minutes=1)
    assert silence.is_active()
    # one that starts tomorrow is not muting now
    later = (timezone.now() + timedelta(days=1)).isoformat()
    code, out, _ = run_cli(
        env,
        "silence",
        "add",
        "--team",
        "payments",
        "rule!=down",
        "--start",
        later,
        "-d",
        "1h30m",
        "-c",
        "tomorrow's window",
    )
    assert code == 0 and out.startswith("silence #") and "rule!=down until" in out
    tomorrow = Silence.objects.exclude(pk=silence.pk).get()
    assert tomorrow.ends_at - tomorrow.starts_at == timedelta(minutes=90)

    code, out, _ = run_cli(env, "silence", "list")
    rows = out.splitlines()
    assert code == 0 and rows[0].split()[:3] == ["ID", "TEAM", "STATE"]
    assert len(rows) == 2 and rows[1].split()[:3] == [str(silence.pk), "payments", "active"]
    assert "service=checkout severity=~page|ticket" in rows[1] and "db migration" in rows[1]
    code, out, _ = run_cli(env, "silence", "list", "--expired", "-o", "json")
    assert [s["id"] for s in json.loads(out)] == [tomorrow.pk]
    code, out, _ = run_cli(env, "silence", "list", "--all", "-o", "yaml")
    assert sorted(s["id"] for s in yaml.safe_load(out)) == sorted([silence.pk, tomorrow.pk])

    code, out, _ = run_cli(env, "silence", "expire", str(silence.pk))
    assert code == 0 and out.strip() == f"silence #{silence.pk} expired"
    silence.refresh_from_db()
    assert silence.expired_at is not None and not silence.is_active()
    code, _, err = run_cli(env, "silence", "expire", str(silence.pk), str(tomorrow.pk))
    assert code == 6 and f"silence {silence.pk} has already expired" in err
    tomorrow.refresh_from_db()
    assert tomorrow.expired_at is not None  # the other id was still expired
    code, out, _ = run_cli(env, "silence", "list")
    assert out.strip() == "no silences"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("service~checkout",), "has no operator: write LABEL=VALUE"),
        (("host=web-1",), "the label must be one of team, service"),
        (("service=checkout", "-d", "2x"), "--duration '2x': write it like 30m"),
        (("service=checkout", "--end", "next tuesday"), "is not an ISO 8601 time"),
        (("service=checkout", "-c", "  "), "--comment must say why"),
    ],
)
def test_silence_add_says_what_to_fix(argv: tuple[str, ...], words: str) -> None:
    env = {"SIGNALBOX_URL": "http://127.0.0.1:1", "SIGNALBOX_TOKEN": "sbx_x_y"}
    code, _, err = run_cli(env, "silence", "add", "--team", "payments", "-c", "x", *argv)
    assert code == 2, err
    assert words in err


def test_silence_refusals_carry_the_api_reason(world: Any, live_server: Any) -> None:
    env = _env(world, live_server, ["read", "deploy"])
    code, _, err = run_cli(
        env,
        "silence",
        "add",
        "--team",
        "payments",
        "service=checkout",
        "-c",
        "x",
        "--end",
        "2020-01-01T00:00:00Z",
    )
    assert code == 6 and "ends_at: must be in the future" in err
    code, _, err = run_cli(env, "silence", "add", "--team", "payments", "subject=~(", "-c", "x")
    assert code == 6 and "not a regular expression" in err
    reader = _env(world, live_server, ["read"])
    code, _, err = run_cli(reader, "silence", "add", "--team", "payments", "-c", "x")
    assert code == 6 and "403" in err
    assert not Silence.objects.exists()


def test_incident_list_ack_and_resolve(world: Any, live_server: Any) -> None:
    incident = firing(world)
    env = _env(world, live_server, ["read", "deploy"])
    code, out, _ = run_cli(env, "incident", "list")
    rows = out.splitlines()
    assert code == 0 and rows[0].split()[:4] == ["ID", "STATE", "SEVERITY", "TEAM"]
    assert rows[1].split()[:6] == [
        str(incident.pk),
        "firing",
        "page",
        "payments",
        "checkout",
        "production",
    ]
    code, out, _ = run_cli(env, "incident", "list", "--severity", "page", "-o", "yaml")
    assert [i["id"] for i in yaml.safe_load(out)] == [incident.pk]

    code, out, _ = run_cli(env, "incident", "ack", str(incident.pk))
    assert code == 0 and out.startswith(f"incident #{incident.pk} acknowledged: ")
    incident.refresh_from_db()
    assert incident.state == "acknowledged"
    assert incident.acknowledged_by == "token:payments/cli-read-deploy"
    code, _, err = run_cli(env, "incident", "ack", str(incident.pk))
    assert code == 6 and "only a firing incident can be acknowledged" in err
    code, out, _ = run_cli(env, "incident", "list", "-o", "json")
    assert [(i["id"], i["acknowledged_by"]) for i in json.loads(out)] == [
        (incident.pk, "token:payments/cli-read-deploy")
    ]
    reader = _env(world, live_server, ["read"])
    code, _, err = run_cli(reader, "incident", "resolve", str(incident.pk))
    assert code == 6 and "403" in err

    code, out, _ = run_cli(env, "incident", "resolve", str(incident.pk))
    assert code == 0 and f"incident #{incident.pk} resolved" in out
    assert Incident.objects.get().state == "resolved"
    code, out, _ = run_cli(env, "incident", "list")
    assert out.strip() == "no incidents"
    code, out, _ = run_cli(env, "incident", "list", "--state", "all", "--service", "checkout")
    assert str(incident.pk) in out and "resolved" in out
