"""The whole demo as code: seed it, add one document of every kind, export, import the
export into an empty database, export again: the same bytes.

Real PostgreSQL (the database is flushed between the two halves, as a second installation
would start), the real `manage.py seed_demo` with the real demo fleet plan (no processes
started), and the real `manage.py catalog` command.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.management import call_command

from alerts.models import Channel, Route, Rule
from catalog.models import Service, Team
from catalog.tests.as_code import run
from debugging.models import ConfigEntry
from deployments.models import FreezeWindow, RecurringFreezeWindow
from health.models import CheckSpec, Heartbeat, MaintenanceWindow

SLACK_URL = "http://127.0.0.1:9/services/T0/B0/slack-token"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
SIGNING_SECRET = "a-signing-secret-of-some-length"
APPRISE_URL = "json://127.0.0.1:9/apprise-token"
STRIPE_KEY = "sk_test_stripe"
DASHBOARD_SECRET = "http://127.0.0.1:9/services/T0/B1/made-in-the-dashboard"

# One document of every kind other apps add, on top of what the demo seeds.
EVERY_KIND = """\
apiVersion: signalbox.dev/v1
kind: CheckSpec
metadata: {service: checkout}
spec: {path: /ready, expectedStatuses: 200-299, intervalSeconds: 15, timeoutSeconds: 2.5}
---
apiVersion: signalbox.dev/v1
kind: Heartbeat
metadata: {service: checkout, name: nightly export, environment: production}
spec: {scheduleKind: cron, cron: "0 3 * * *", timezone: Europe/Berlin, graceSeconds: 1800}
---
apiVersion: signalbox.dev/v1
kind: MaintenanceWindow
metadata: {service: checkout}
spec:
  windows:
    - {reason: weekly patching, cron: "0 3 * * 6", timezone: Europe/Berlin, durationMinutes: 60}
    - {reason: db upgrade, environment: production, startsAt: "2027-01-05T02:00:00+01:00",
       endsAt: "2027-01-05T04:30:00+01:00"}
---
apiVersion: signalbox.dev/v1
kind: FreezeWindow
metadata: {environment: production}
spec:
  windows:
    - {reason: year-end close, startsAt: "2026-12-23T00:00:00Z", endsAt: "2027-01-04T00:00:00Z"}
  recurring:
    - {name: weekend, days: [fri], startTime: "16:00", durationMinutes: 3840,
       timezone: Europe/Berlin, reason: nobody on call}
---
apiVersion: signalbox.dev/v1
kind: RuntimeConfig
metadata: {service: checkout, environment: production}
spec:
  entries:
    root: {kind: log_level, value: INFO}
    new-checkout: {kind: flag, value: true}
    stripe-key: {kind: secret, fromEnv: STRIPE_KEY}
---
apiVersion: signalbox.dev/v1
kind: AlertChannel
metadata: {team: commerce, name: oncall-slack}
spec: {type: slack, secret: {fromEnv: COMMERCE_SLACK}}
---
apiVersion: signalbox.dev/v1
kind: AlertChannel
metadata: {team: commerce, name: pager}
spec: {type: pagerduty, secret: {fromFile: KEYFILE}}
---
apiVersion: signalbox.dev/v1
kind: AlertChannel
metadata: {team: commerce, name: hook}
spec: {type: webhook, url: "http://127.0.0.1:9/hook", secret: {fromEnv: COMMERCE_HOOK}}
---
apiVersion: signalbox.dev/v1
kind: AlertChannel
metadata: {team: storefront, name: mail}
spec: {type: email, config: {to: [web-oncall@example.com]}, enabled: false}
---
apiVersion: signalbox.dev/v1
kind: AlertChannel
metadata: {team: storefront, name: teams}
spec: {type: apprise, secret: {fromEnv: STOREFRONT_APPRISE}}
---
apiVersion: signalbox.dev/v1
kind: AlertRoute
metadata: {team: commerce, severity: page, channel: pager}
spec: {groupWaitSeconds: 30}
---
apiVersion: signalbox.dev/v1
kind: AlertRoute
metadata: {team: commerce, severity: page, channel: oncall-slack, escalationLevel: 1}
---
apiVersion: signalbox.dev/v1
kind: AlertRoute
metadata: {team: storefront, severity: ticket, channel: mail}
spec: {enabled: false}
---
apiVersion: signalbox.dev/v1
kind: AlertRule
metadata: {team: commerce, name: Checkout down fast}
spec:
  type: service_state
  severity: page
  service: checkout
  environment: production
  params: {states: [down], for_seconds: 30}
"""


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment (and a file) the references name; returns the file's path."""
    keyfile = tmp_path / "pagerduty.key"
    keyfile.write_text(ROUTING_KEY + "\n")
    for variable, value in {
        "COMMERCE_SLACK": SLACK_URL,
        "COMMERCE_HOOK": SIGNING_SECRET,
        "STOREFRONT_APPRISE": APPRISE_URL,
        "STRIPE_KEY": STRIPE_KEY,
    }.items():
        monkeypatch.setenv(variable, value)
    return keyfile


def seed_the_demo(tmp_path: Path) -> None:
    from fleet.plan import build_plan, write_plan

    plan = tmp_path / "demo-fleet.json"
    write_plan(build_plan(Path("fleet/demo.yaml"), base_port=7100, control_port=7900), plan)
    call_command("seed_demo", "--fleet", str(plan), stdout=_Null(), stderr=_Null())


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


@pytest.mark.django_db(transaction=True)
def test_the_whole_demo_round_trips_through_an_empty_database(
    demo_settings: Path, tmp_path: Path, secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the demo, one document of every kind on top, and a channel made in the dashboard
    seed_the_demo(tmp_path)
    extra = tmp_path / "every-kind.yaml"
    extra.write_text(EVERY_KIND.replace("KEYFILE", str(secrets)))
    run("import", str(extra))
    rule = Rule.objects.get(team__slug="storefront", default_key="service-degraded")
    rule.name, rule.severity, rule.enabled = "Web degraded", "info", False
    rule.save()
    Channel.objects.create(
        team=Team.objects.get(slug="identity"), name="Auth Room", kind="slack",
        secret=DASHBOARD_SECRET,
    )  # fmt: skip
    # when it is exported
    first, notes = run("export")
    kinds = {d["kind"] for d in yaml.safe_load_all(first) if d}
    assert kinds == {
        "Team", "Environment", "ExternalDependency", "Service", "CheckSpec", "Heartbeat",
        "MaintenanceWindow", "FreezeWindow", "RuntimeConfig", "AlertChannel", "AlertRoute",
        "AlertRule",
    }  # fmt: skip
    # then no secret is in it, and it says which variables to set for the dashboard's channel
    for secret in (SLACK_URL, ROUTING_KEY, SIGNING_SECRET, APPRISE_URL, STRIPE_KEY):
        assert secret not in first
    assert DASHBOARD_SECRET not in first and DASHBOARD_SECRET not in notes
    variable = "SIGNALBOX_CHANNEL_IDENTITY_AUTH_ROOM_URL"
    assert re.search(rf"{variable} \(AlertChannel/identity/Auth Room\)", notes)
    members = {
        username
        for d in yaml.safe_load_all(first)
        if d and d["kind"] == "Team"
        for username in d["spec"].get("members", {})
    }
    # when the database is emptied (a second installation), its people created by an admin,
    # the variables set, and the export imported
    call_command("flush", "--no-input", stdout=_Null())
    assert not Service.objects.exists() and not Rule.objects.exists()
    for username in sorted(members):
        get_user_model().objects.create_user(username)
    monkeypatch.setenv(variable, DASHBOARD_SECRET)
    monkeypatch.setenv("SIGNALBOX_SECRET_STRIPE_KEY", STRIPE_KEY)
    backup = tmp_path / "backup.yaml"
    backup.write_text(first)
    run("import", str(backup))
    # then exporting again gives the same bytes
    second, _ = run("export")
    assert second == first
    # and what matters behind the bytes came back: secrets, routes, rules, the rest
    assert Channel.objects.get(name="pager").secret == ROUTING_KEY
    assert Channel.objects.get(name="Auth Room").secret == DASHBOARD_SECRET
    assert Route.objects.count() == 3
    assert Rule.objects.filter(name="Web degraded", default_key="service-degraded").count() == 1
    assert CheckSpec.objects.get(service__slug="checkout").path == "/ready"
    assert Heartbeat.objects.get().name == "nightly export"
    assert MaintenanceWindow.objects.count() == 2
    assert FreezeWindow.objects.count() == RecurringFreezeWindow.objects.count() == 1
    assert ConfigEntry.objects.get(key="stripe-key").secret == STRIPE_KEY
    # and importing the export once more changes nothing
    out, _ = run("import", str(backup))
    assert "Imported: 0 created, 0 updated" in out, out
