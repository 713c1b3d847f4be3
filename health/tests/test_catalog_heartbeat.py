"""Heartbeat documents in catalog files: export, import (all or nothing), plans, prune, access.

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

from catalog.models import Environment, Service, Team
from catalog.tests.as_code import run
from controlplane.models import Event
from health.choices import HeartbeatEvent
from health.models import Heartbeat


def configure(world: Any) -> None:
    Heartbeat.objects.create(
        service=world.service,
        environment=world.production,
        name="nightly export",
        schedule_kind="cron",
        cron="0 3 * * *",
        timezone="Europe/Berlin",
        grace_seconds=1800,
    )
    Heartbeat.objects.create(service=world.service, name="nightly export", period_seconds=3600)
    Heartbeat.objects.create(service=world.other_service, name="reindex")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def created_events(after: int) -> int:
    return Event.objects.filter(action=HeartbeatEvent.CREATED, id__gt=after).count()


@pytest.mark.django_db
def test_export_then_import_into_an_empty_catalog_exports_the_same(
    world: Any, tmp_path: Path
) -> None:
    # given heartbeats: a cron one in one environment, a period one in every environment
    configure(world)
    exported = tmp_path / "catalog.yaml"
    run("export", "--out", str(exported))
    text = exported.read_text()
    documents = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "Heartbeat"]
    # then each is named by service, environment (none: every one) and name; non-defaults only
    assert documents == [
        {
            "apiVersion": "signalbox.dev/v1",
            "kind": "Heartbeat",
            "metadata": {"service": "checkout", "name": "nightly export"},
            "spec": {"periodSeconds": 3600},
        },
        {
            "apiVersion": "signalbox.dev/v1",
            "kind": "Heartbeat",
            "metadata": {
                "service": "checkout",
                "name": "nightly export",
                "environment": "production",
            },
            "spec": {
                "scheduleKind": "cron",
                "cron": "0 3 * * *",
                "timezone": "Europe/Berlin",
                "graceSeconds": 1800,
            },
        },
        {
            "apiVersion": "signalbox.dev/v1",
            "kind": "Heartbeat",
            "metadata": {"service": "indexer", "name": "reindex"},
            "spec": {},
        },
    ]
    # and no ping key: anyone holding it could ping
    for heartbeat in Heartbeat.objects.all():
        assert str(heartbeat.uuid) not in text
    # when the catalog is emptied and the export imported again
    Service.objects.all().delete()
    Team.objects.all().delete()
    Environment.objects.all().delete()
    assert Heartbeat.objects.count() == 0
    before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    out, _ = run("import", str(exported))
    assert "+ Heartbeat/checkout/production/nightly export" in out
    assert "+ Heartbeat/checkout/*/nightly export" in out
    # then exporting again gives the same file, and each was created with one event
    again = tmp_path / "again.yaml"
    run("export", "--out", str(again))
    assert again.read_text() == text
    assert created_events(before) == 3
    # and importing the same file again changes nothing
    out, _ = run("import", str(exported))
    assert "Heartbeat" not in out
    assert Event.objects.filter(action__startswith="heartbeat.", id__gt=before).count() == 3


@pytest.mark.django_db
def test_a_bad_schedule_in_one_document_rolls_back_the_whole_import(
    world: Any, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        """\
        apiVersion: signalbox.dev/v1
        kind: Heartbeat
        metadata: {service: checkout, name: backup}
        spec: {periodSeconds: 600}
        ---
        apiVersion: signalbox.dev/v1
        kind: Heartbeat
        metadata: {service: checkout, name: report, environment: production}
        spec: {scheduleKind: cron, cron: "every night", timezone: Mars/Olympus}
        ---
        apiVersion: signalbox.dev/v1
        kind: Heartbeat
        metadata: {service: checkout, name: sweep, environment: moon}
        spec: {periodSeconds: 30}
        """,
    )
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("catalog", "import", str(path), stdout=StringIO(), stderr=err)
    message = err.getvalue()
    where = "catalog.yaml#2 Heartbeat/checkout/production/report"
    assert f"{where}: spec.cron: must be a 5-field cron expression" in message
    assert f"{where}: spec.timezone: must be an IANA time zone name" in message
    where = "catalog.yaml#3 Heartbeat/checkout/moon/sweep"
    assert f"{where}: metadata.environment: Environment/moon is neither" in message
    assert f"{where}: spec.periodSeconds: must be at least 60 seconds" in message
    # the good heartbeat was not written either
    assert Heartbeat.objects.count() == 0


@pytest.mark.django_db
def test_a_dry_run_plans_and_prune_deletes_what_the_files_leave_out(
    world: Any, tmp_path: Path
) -> None:
    configure(world)
    path = write(
        tmp_path,
        """\
        apiVersion: signalbox.dev/v1
        kind: Heartbeat
        metadata: {service: checkout, name: nightly export}
        spec: {periodSeconds: 7200}
        ---
        apiVersion: signalbox.dev/v1
        kind: Heartbeat
        metadata: {service: checkout, name: backup}
        """,
    )
    out, _ = run("import", "--dry-run", str(path))
    assert "~ Heartbeat/checkout/*/nightly export (spec.periodSeconds)" in out
    assert "+ Heartbeat/checkout/*/backup" in out
    assert "Heartbeat/indexer" not in out  # kept without --prune
    assert Heartbeat.objects.count() == 3
    # with --prune (and the rest of the catalog in the files), the others are planned deleted
    catalog = [d for d in yaml.safe_load_all(StringIO(run("export")[0])) if d]
    catalog = [d for d in catalog if d["kind"] != "Heartbeat"]
    full = tmp_path / "full.yaml"
    full.write_text(yaml.safe_dump_all(catalog) + "---\n" + path.read_text())
    out, _ = run("import", "--prune", "--dry-run", str(full))
    assert "- Heartbeat/checkout/production/nightly export" in out
    assert "- Heartbeat/indexer/*/reindex" in out
    assert Heartbeat.objects.count() == 3
    run("import", "--prune", str(full))
    rows = {
        (h.service.slug, h.environment_id, h.name, h.period_seconds)
        for h in Heartbeat.objects.all()
    }
    assert rows == {("checkout", None, "nightly export", 7200), ("checkout", None, "backup", 86400)}
    assert Event.objects.filter(action=HeartbeatEvent.DELETED).count() == 2


BACKUP = """\
apiVersion: signalbox.dev/v1
kind: Heartbeat
metadata: {service: checkout, name: backup}
spec: {periodSeconds: 600}
"""


@pytest.mark.django_db
def test_the_api_imports_with_the_apis_permissions(world: Any, api_as: Any) -> None:
    for persona in ("viewer", "outsider"):
        response = api_as(persona).post(
            "/api/v1/catalog/import", {"filename": "h.yaml", "yaml": BACKUP}, format="json"
        )
        assert response.status_code == 403, response.content
        assert "team payments" in response.json()["error"]["message"]
    assert Heartbeat.objects.count() == 0
    response = api_as("owner").post(
        "/api/v1/catalog/import?dry_run=1", {"filename": "h.yaml", "yaml": BACKUP}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["changes"] == [
        {"kind": "Heartbeat", "name": "checkout/*/backup", "action": "created", "fields": []}
    ]
    assert Heartbeat.objects.count() == 0
    response = api_as("owner").post(
        "/api/v1/catalog/import", {"filename": "h.yaml", "yaml": BACKUP}, format="json"
    )
    assert response.status_code == 200, response.content
    assert Heartbeat.objects.get(name="backup").period_seconds == 600
    bad = BACKUP.replace("periodSeconds: 600", "graceSeconds: -5")
    response = api_as("owner").post(
        "/api/v1/catalog/import", {"filename": "h.yaml", "yaml": bad}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "h.yaml#1 Heartbeat/checkout/*/backup: spec.graceSeconds" in str(response.json())
    assert Heartbeat.objects.get(name="backup").period_seconds == 600
