"""Alert channels, routes and rules in catalog files: secrets by reference, export, import
(all or nothing), plans, prune and the API's permissions.

Real PostgreSQL, the real `manage.py catalog` command and the real import API.
"""

from __future__ import annotations

import textwrap
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command

from alerts.choices import AlertChannelEvent, AlertRouteEvent, AlertRuleEvent
from alerts.models import Channel, Route, Rule
from catalog.models import Environment, Service, Team
from catalog.tests.as_code import run
from controlplane.models import Event

SLACK_URL = "http://127.0.0.1:9/services/T000/B000/slack-token-xyz"
ROUTING_KEY = "a" * 32

FILES = """\
apiVersion: signalbox.dev/v1
kind: AlertChannel
metadata: {team: payments, name: oncall-slack}
spec:
  type: slack
  secret: {fromEnv: PAYMENTS_SLACK}
---
apiVersion: signalbox.dev/v1
kind: AlertChannel
metadata: {team: payments, name: pager}
spec:
  type: pagerduty
  secret: {fromFile: KEYFILE}
---
apiVersion: signalbox.dev/v1
kind: AlertChannel
metadata: {team: payments, name: mail}
spec:
  type: email
  config: {to: [oncall@example.com]}
---
apiVersion: signalbox.dev/v1
kind: AlertRoute
metadata: {team: payments, severity: page, channel: pager}
spec: {groupWaitSeconds: 30}
---
apiVersion: signalbox.dev/v1
kind: AlertRoute
metadata: {team: payments, severity: page, channel: oncall-slack, escalationLevel: 1}
---
apiVersion: signalbox.dev/v1
kind: AlertRule
metadata: {team: payments, name: Checkout down fast}
spec:
  type: service_state
  severity: page
  service: checkout
  environment: production
  params: {states: [down], for_seconds: 30}
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    keyfile = tmp_path / "pagerduty.key"
    keyfile.write_text(ROUTING_KEY + "\n")
    monkeypatch.setenv("PAYMENTS_SLACK", SLACK_URL)
    path = tmp_path / "alerts.yaml"
    path.write_text(FILES.replace("KEYFILE", str(keyfile)))
    return path


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def events(prefix: str, after: int = 0) -> list[str]:
    return list(
        Event.objects.filter(action__startswith=prefix, id__gt=after)
        .order_by("id")
        .values_list("action", flat=True)
    )


def documents(text: str, kind: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d and d["kind"] == kind]


@pytest.mark.django_db
def test_import_reads_secrets_from_references_and_export_writes_the_references_back(
    world: Any, files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = run("import", str(files))
    assert "+ AlertChannel/payments/oncall-slack" in out
    assert "+ AlertRoute/payments/page/pager/L0" in out
    assert "+ AlertRule/payments/Checkout down fast" in out
    # the secrets were read from the variable and the file, and stored (encrypted)
    assert Channel.objects.get(name="oncall-slack").secret == SLACK_URL
    assert Channel.objects.get(name="pager").secret == ROUTING_KEY
    route = Route.objects.get(channel__name="pager")
    assert (route.severity, route.escalation_level, route.group_wait_seconds) == ("page", 0, 30)
    rule = Rule.objects.get(name="Checkout down fast")
    assert (rule.service, rule.environment, rule.params["for_seconds"]) == (
        world.service,
        world.production,
        30,
    )
    # one audited event per object, as through the API
    assert events("alert_channel.") == [AlertChannelEvent.CREATED] * 3
    assert events("alert_route.") == [AlertRouteEvent.CREATED] * 2
    assert events("alert_rule.") == [AlertRuleEvent.CREATED]
    # the export writes the references, never a secret
    exported, err = run("export")
    assert SLACK_URL not in exported and ROUTING_KEY not in exported
    channels = {d["metadata"]["name"]: d["spec"] for d in documents(exported, "AlertChannel")}
    assert channels["oncall-slack"] == {"type": "slack", "secret": {"fromEnv": "PAYMENTS_SLACK"}}
    assert channels["pager"]["secret"] == {"fromFile": str(tmp_path / "pagerduty.key")}
    assert channels["mail"] == {"type": "email", "config": {"to": ["oncall@example.com"]}}
    assert "SIGNALBOX_CHANNEL" not in err  # every secret has its reference
    # and importing the same files again changes nothing
    before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    out, _ = run("import", str(files))
    assert "Alert" not in out
    assert events("alert_", before) == []
    # and the same secret from another variable is a change, audited without the secret
    monkeypatch.setenv("PAYMENTS_SLACK_V2", SLACK_URL)
    files.write_text(files.read_text().replace("PAYMENTS_SLACK}", "PAYMENTS_SLACK_V2}"))
    out, _ = run("import", str(files))
    assert "~ AlertChannel/payments/oncall-slack (spec.secret)" in out
    assert events("alert_", before) == [AlertChannelEvent.UPDATED]
    event = Event.objects.get(action=AlertChannelEvent.UPDATED)
    assert event.payload["changes"]["secret_source"] == [
        {"fromEnv": "PAYMENTS_SLACK"},
        {"fromEnv": "PAYMENTS_SLACK_V2"},
    ]
    assert SLACK_URL not in str(event.payload)


@pytest.mark.django_db
def test_a_secret_written_in_the_file_or_a_missing_variable_imports_nothing(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = write(
        tmp_path,
        f"""\
        apiVersion: signalbox.dev/v1
        kind: AlertChannel
        metadata: {{team: payments, name: inline}}
        spec: {{type: slack, secret: "{SLACK_URL}"}}
        ---
        apiVersion: signalbox.dev/v1
        kind: AlertChannel
        metadata: {{team: payments, name: unset}}
        spec:
          type: pagerduty
          secret: {{fromEnv: NOT_SET_ANYWHERE}}
        ---
        apiVersion: signalbox.dev/v1
        kind: AlertChannel
        metadata: {{team: payments, name: unreadable}}
        spec:
          type: apprise
          secret: {{fromFile: {tmp_path / "nope.txt"}}}
        ---
        apiVersion: signalbox.dev/v1
        kind: AlertChannel
        metadata: {{team: payments, name: good}}
        spec: {{type: email, config: {{to: [a@example.com]}}}}
        """,
    )
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("catalog", "import", str(path), stdout=StringIO(), stderr=err)
    message = err.getvalue()
    assert (
        "c.yaml#1 AlertChannel/payments/inline: spec.secret: a secret is never written in the "
        "file: use {fromEnv: VARIABLE} or {fromFile: PATH}" in message
    )
    assert (
        "c.yaml#2 AlertChannel/payments/unset: spec.secret.fromEnv: the environment variable "
        "NOT_SET_ANYWHERE is not set" in message
    )
    assert "c.yaml#3 AlertChannel/payments/unreadable: spec.secret.fromFile: cannot read" in message
    assert SLACK_URL not in message
    # the good channel was not written either
    assert Channel.objects.count() == 0


@pytest.mark.django_db
def test_bad_values_are_the_apis_refusals_and_roll_everything_back(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHORT_KEY", "too-short")
    path = write(
        tmp_path,
        """\
        apiVersion: signalbox.dev/v1
        kind: AlertChannel
        metadata: {team: payments, name: pager}
        spec: {type: pagerduty, secret: {fromEnv: SHORT_KEY}}
        ---
        apiVersion: signalbox.dev/v1
        kind: AlertRoute
        metadata: {team: payments, severity: page, channel: nowhere}
        ---
        apiVersion: signalbox.dev/v1
        kind: AlertRule
        metadata: {team: payments, name: theirs}
        spec: {type: service_state, service: indexer, params: {for_seconds: -1}}
        ---
        apiVersion: signalbox.dev/v1
        kind: AlertRule
        metadata: {team: payments, name: ok}
        spec: {type: circuit_open}
        """,
    )
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("catalog", "import", str(path), stdout=StringIO(), stderr=err)
    message = err.getvalue()
    assert "AlertChannel/payments/pager: spec.secret: a PagerDuty routing key is 32" in message
    assert (
        "AlertRoute/payments/page/nowhere/L0: metadata.channel: AlertChannel/payments/nowhere "
        "is neither in the files nor in the catalog" in message
    )
    assert "AlertRule/payments/theirs: spec.service: indexer is search's service" in message
    assert Rule.objects.filter(name="ok").count() == 0


@pytest.mark.django_db
def test_a_dashboard_channels_export_names_a_variable_and_says_to_set_it(world: Any) -> None:
    Channel.objects.create(team=world.team, name="Ops Room", kind="slack", secret=SLACK_URL)
    Channel.objects.create(team=world.team, name="hook", kind="webhook", url="http://127.0.0.1:9/")
    out, err = run("export")
    channels = {d["metadata"]["name"]: d["spec"] for d in documents(out, "AlertChannel")}
    variable = "SIGNALBOX_CHANNEL_PAYMENTS_OPS_ROOM_URL"
    assert channels["Ops Room"] == {"type": "slack", "secret": {"fromEnv": variable}}
    assert channels["hook"] == {"type": "webhook", "url": "http://127.0.0.1:9/"}
    assert SLACK_URL not in out and SLACK_URL not in err
    assert variable in err and "AlertChannel/payments/Ops Room" in err
    assert "hook" not in err  # no secret, nothing to set


@pytest.mark.django_db
def test_a_dry_run_plans_changes_and_prune_deletes_what_the_files_leave_out(
    world: Any, files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("import", str(files))
    monkeypatch.setenv("PAYMENTS_SLACK", SLACK_URL + "-rotated")
    changed = files.read_text().replace("groupWaitSeconds: 30", "groupWaitSeconds: 60")
    changed = changed.replace("for_seconds: 30", "for_seconds: 45")
    files.write_text(changed)
    out, _ = run("import", "--dry-run", str(files))
    assert "~ AlertChannel/payments/oncall-slack (spec.secret)" in out
    assert "~ AlertRoute/payments/page/pager/L0 (spec.groupWaitSeconds)" in out
    assert "~ AlertRule/payments/Checkout down fast (spec.params)" in out
    assert SLACK_URL not in out
    assert Route.objects.get(channel__name="pager").group_wait_seconds == 30
    # --prune with the whole catalog but without the mail channel and one route
    exported = [d for d in yaml.safe_load_all(run("export")[0]) if d]
    kept = [
        d
        for d in exported
        if d["metadata"].get("name") != "mail"
        and not (d["kind"] == "AlertRoute" and d["metadata"].get("escalationLevel") == 1)
        and not (d["kind"] == "AlertRule" and d["metadata"]["name"] == "Rollout failed")
    ]
    full = tmp_path / "full.yaml"
    full.write_text(yaml.safe_dump_all(kept))
    out, _ = run("import", "--prune", "--dry-run", str(full))
    assert "- AlertChannel/payments/mail" in out
    assert "- AlertRoute/payments/page/oncall-slack/L1" in out
    assert "- AlertRule/payments/Rollout failed" in out
    # the rollback rule is never pruned
    rollback = [d for d in kept if d["metadata"].get("name") == "Rollout rolled back"]
    full.write_text(yaml.safe_dump_all([d for d in kept if d not in rollback]))
    out, _ = run("import", "--prune", str(full))
    assert "Rollout rolled back" not in out
    assert not Channel.objects.filter(name="mail").exists()
    assert Route.objects.count() == 1
    assert Rule.objects.filter(team=world.team, name="Rollout rolled back").exists()


def channel_file() -> str:
    return (
        "apiVersion: signalbox.dev/v1\nkind: AlertChannel\n"
        "metadata: {team: payments, name: oncall-slack}\n"
        "spec: {type: slack, secret: {fromEnv: PAYMENTS_SLACK}}\n"
    )


@pytest.mark.django_db
def test_the_api_imports_with_the_apis_permissions_and_cannot_read_secrets(
    world: Any, api_as: Any, files: Path
) -> None:
    mail = (
        "apiVersion: signalbox.dev/v1\nkind: AlertChannel\n"
        "metadata: {team: payments, name: mail}\n"
        "spec: {type: email, config: {to: [oncall@example.com]}}\n"
    )
    rule = (
        "apiVersion: signalbox.dev/v1\nkind: AlertRule\n"
        "metadata: {team: payments, name: circuits}\nspec: {type: circuit_open}\n"
    )
    for persona in ("viewer", "deployer", "outsider"):
        for document in (mail, rule):
            response = api_as(persona).post(
                "/api/v1/catalog/import", {"filename": "a.yaml", "yaml": document}, format="json"
            )
            assert response.status_code == 403, (persona, response.content)
            assert "team payments" in response.json()["error"]["message"]
    assert not Rule.objects.filter(name="circuits").exists()
    # a file posted to the API cannot read the server's environment
    body = {"filename": "a.yaml", "yaml": channel_file()}
    response = api_as("owner").post("/api/v1/catalog/import", body, format="json")
    assert response.status_code == 400, response.content
    assert "cannot read the server's environment" in str(response.json())
    assert Channel.objects.count() == 0
    # once imported by the operator, the API's re-import keeps the secret
    run("import", str(files))
    both = {"filename": "a.yaml", "yaml": channel_file() + "---\n" + rule}
    response = api_as("owner").post("/api/v1/catalog/import", both, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["changes"] == [
        {"kind": "AlertRule", "name": "payments/circuits", "action": "created", "fields": []}
    ]
    assert Channel.objects.get(name="oncall-slack").secret == SLACK_URL
    # and a change to the channel through the API keeps its secret
    off = channel_file().replace("secret: {fromEnv", "enabled: false, secret: {fromEnv")
    response = api_as("owner").post(
        "/api/v1/catalog/import", {"filename": "a.yaml", "yaml": off}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["changes"] == [
        {
            "kind": "AlertChannel",
            "name": "payments/oncall-slack",
            "action": "updated",
            "fields": ["spec.enabled"],
        }
    ]
    channel = Channel.objects.get(name="oncall-slack")
    assert (channel.enabled, channel.secret) == (False, SLACK_URL)
    assert channel.secret_source == {"fromEnv": "PAYMENTS_SLACK"}


@pytest.mark.django_db
def test_a_new_teams_default_rules_are_the_files_rules_not_second_copies(
    world: Any, tmp_path: Path
) -> None:
    # given a team's default rule renamed and changed, exported
    rule = Rule.objects.get(team=world.team, default_key="service-down")
    rule.name, rule.severity = "Checkout is down", "ticket"
    rule.save()
    exported = run("export")[0]
    # when everything is deleted and the export imported into the empty catalog
    Service.objects.all().delete()
    Team.objects.all().delete()
    Environment.objects.all().delete()
    path = tmp_path / "backup.yaml"
    path.write_text(exported)
    run("import", str(path))
    # then the new team's default rule is the renamed one, once
    rules = Rule.objects.filter(team__slug="payments", default_key="service-down")
    assert [(r.name, r.severity) for r in rules] == [("Checkout is down", "ticket")]
    assert run("export")[0] == exported
