"""MaintenanceWindow documents in catalog files: export, import (all or nothing), plans, prune.

Real PostgreSQL, the real `manage.py catalog` command and the real import API.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command

from catalog.models import Environment, Service, Team
from catalog.tests.as_code import run
from controlplane.models import Event
from health.choices import MaintenanceEvent
from health.models import MaintenanceWindow


def configure(world: Any) -> None:
    MaintenanceWindow.objects.create(
        service=world.service,
        environment=world.production,
        reason="database upgrade",
        starts_at=datetime(2026, 12, 5, 2, 0, tzinfo=UTC),
        ends_at=datetime(2026, 12, 5, 4, 30, tzinfo=UTC),
    )
    MaintenanceWindow.objects.create(
        service=world.service,
        reason="weekly patching",
        cron="0 3 * * 6",
        timezone="Europe/Berlin",
        duration_minutes=60,
    )
    MaintenanceWindow.objects.create(
        service=world.other_service, cron="0 1 * * *", duration_minutes=15
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.django_db
def test_export_then_import_into_an_empty_catalog_exports_the_same(
    world: Any, tmp_path: Path
) -> None:
    configure(world)
    exported = tmp_path / "catalog.yaml"
    run("export", "--out", str(exported))
    text = exported.read_text()
    documents = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "MaintenanceWindow"]
    # one document per service, its windows in a stable order, times in UTC
    assert [d["metadata"] for d in documents] == [{"service": "checkout"}, {"service": "indexer"}]
    assert documents[0]["spec"]["windows"] == [
        {
            "reason": "weekly patching",
            "cron": "0 3 * * 6",
            "timezone": "Europe/Berlin",
            "durationMinutes": 60,
        },
        {
            "reason": "database upgrade",
            "environment": "production",
            "startsAt": "2026-12-05T02:00:00Z",
            "endsAt": "2026-12-05T04:30:00Z",
        },
    ]
    Service.objects.all().delete()
    Team.objects.all().delete()
    Environment.objects.all().delete()
    assert MaintenanceWindow.objects.count() == 0
    before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    out, _ = run("import", str(exported))
    assert "+ MaintenanceWindow/checkout (spec.windows[0], spec.windows[1])" in out
    again = tmp_path / "again.yaml"
    run("export", "--out", str(again))
    assert again.read_text() == text
    created = Event.objects.filter(action=MaintenanceEvent.CREATED, id__gt=before)
    assert created.count() == 3
    # the same file again: nothing changes
    out, _ = run("import", str(exported))
    assert "MaintenanceWindow" not in out
    assert MaintenanceWindow.objects.count() == 3
    assert Event.objects.filter(action__startswith="maintenance.", id__gt=before).count() == 3


@pytest.mark.django_db
def test_the_file_is_the_whole_list_and_a_bad_window_rolls_back(world: Any, tmp_path: Path) -> None:
    configure(world)
    # one window edited (so: one deleted, one created), one kept (its start written as a
    # YAML timestamp in another offset: the same moment)
    path = write(
        tmp_path,
        """\
        apiVersion: signalbox.dev/v1
        kind: MaintenanceWindow
        metadata: {service: checkout}
        spec:
          windows:
            - {reason: weekly patching, cron: "0 3 * * 6", timezone: Europe/Berlin,
               durationMinutes: 90}
            - {reason: database upgrade, environment: production,
               startsAt: 2026-12-05T03:00:00+01:00, endsAt: "2026-12-05T04:30:00Z"}
        """,
    )
    out, _ = run("import", "--dry-run", str(path))
    assert (
        "~ MaintenanceWindow/checkout (spec.windows[0], "
        "spec.windows: remove weekly patching (0 3 * * 6))"
    ) in out
    bad = path.read_text().replace(
        'endsAt: "2026-12-05T04:30:00Z"', 'endsAt: "2026-12-05T01:00:00Z"'
    )
    bad += textwrap.dedent(
        """\
        ---
        apiVersion: signalbox.dev/v1
        kind: MaintenanceWindow
        metadata: {service: indexer}
        spec:
          windows:
            - {cron: "whenever"}
        """
    )
    path.write_text(bad)
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("catalog", "import", str(path), stdout=StringIO(), stderr=err)
    message = err.getvalue()
    assert "catalog.yaml#1 MaintenanceWindow/checkout: spec.windows[1].endsAt: must be after" in (
        message
    )
    assert "catalog.yaml#2 MaintenanceWindow/indexer: spec.windows[0].cron: must be a 5-field" in (
        message
    )
    assert "spec.windows[0].durationMinutes: a recurring window needs its length" in message
    # nothing changed: the recurring window still lasts an hour
    assert MaintenanceWindow.objects.get(cron="0 3 * * 6").duration_minutes == 60
    assert MaintenanceWindow.objects.count() == 3


@pytest.mark.django_db
def test_prune_and_the_api_permissions(world: Any, api_as: Any) -> None:
    configure(world)
    exported = api_as("admin").get("/api/v1/catalog/export").content.decode()
    documents = [d for d in yaml.safe_load_all(exported) if d]
    kept = [
        d
        for d in documents
        if not (d["kind"] == "MaintenanceWindow" and d["metadata"]["service"] == "indexer")
    ]
    text = yaml.safe_dump_all(kept)
    # the owner of checkout's team may not prune indexer's windows (another team's)
    response = api_as("owner").post(
        "/api/v1/catalog/import?prune=1&dry_run=1",
        {"filename": "c.yaml", "yaml": text},
        format="json",
    )
    assert response.status_code == 403, response.content
    assert "MaintenanceWindow/indexer" in response.json()["error"]["message"]
    # an admin's dry run plans it, and the import deletes it
    response = api_as("admin").post(
        "/api/v1/catalog/import?prune=1&dry_run=1",
        {"filename": "c.yaml", "yaml": text},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["changes"] == [
        {"kind": "MaintenanceWindow", "name": "indexer", "action": "deleted", "fields": []}
    ]
    assert MaintenanceWindow.objects.filter(service=world.other_service).exists()
    response = api_as("admin").post(
        "/api/v1/catalog/import?prune=1", {"filename": "c.yaml", "yaml": text}, format="json"
    )
    assert response.status_code == 200, response.content
    assert not MaintenanceWindow.objects.filter(service=world.other_service).exists()
    assert MaintenanceWindow.objects.filter(service=world.service).count() == 2
