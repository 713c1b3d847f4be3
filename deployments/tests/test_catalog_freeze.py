"""FreezeWindow documents in catalog files: export, import (all or nothing), plans, admin only.

Real PostgreSQL, the real `manage.py catalog` command and the real import API.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command

from catalog.models import Environment, Service, Team
from catalog.tests.as_code import run
from controlplane.models import Event
from deployments.models import FreezeWindow, RecurringFreezeWindow


def configure(world: Any) -> None:
    FreezeWindow.objects.create(
        environment=world.production,
        reason="year-end close",
        starts_at=datetime(2026, 12, 23, tzinfo=UTC),
        ends_at=datetime(2027, 1, 4, tzinfo=UTC),
    )
    RecurringFreezeWindow.objects.create(
        environment=world.production,
        name="weekend",
        days=["fri"],
        start_time=time(16, 0),
        duration_minutes=3840,
        timezone="Europe/Berlin",
        reason="nobody on call",
    )
    RecurringFreezeWindow.objects.create(
        environment=world.staging,
        name="night",
        days=["mon", "tue", "wed", "thu", "fri"],
        start_time=time(22, 30),
        duration_minutes=480,
        reason="backups",
    )


@pytest.mark.django_db
def test_export_then_import_into_an_empty_catalog_exports_the_same(
    world: Any, tmp_path: Path
) -> None:
    configure(world)
    exported = tmp_path / "catalog.yaml"
    run("export", "--out", str(exported))
    text = exported.read_text()
    documents = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "FreezeWindow"]
    assert documents == [
        {
            "apiVersion": "signalbox.dev/v1",
            "kind": "FreezeWindow",
            "metadata": {"environment": "production"},
            "spec": {
                "windows": [
                    {
                        "reason": "year-end close",
                        "startsAt": "2026-12-23T00:00:00Z",
                        "endsAt": "2027-01-04T00:00:00Z",
                    }
                ],
                "recurring": [
                    {
                        "name": "weekend",
                        "days": ["fri"],
                        "startTime": "16:00",
                        "durationMinutes": 3840,
                        "timezone": "Europe/Berlin",
                        "reason": "nobody on call",
                    }
                ],
            },
        },
        {
            "apiVersion": "signalbox.dev/v1",
            "kind": "FreezeWindow",
            "metadata": {"environment": "staging"},
            "spec": {
                "recurring": [
                    {
                        "name": "night",
                        "days": ["mon", "tue", "wed", "thu", "fri"],
                        "startTime": "22:30",
                        "durationMinutes": 480,
                        "reason": "backups",
                    }
                ]
            },
        },
    ]
    Service.objects.all().delete()
    Team.objects.all().delete()
    Environment.objects.all().delete()
    assert FreezeWindow.objects.count() + RecurringFreezeWindow.objects.count() == 0
    before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    out, _ = run("import", str(exported))
    assert "+ FreezeWindow/production (spec.windows[0], spec.recurring[0])" in out
    again = tmp_path / "again.yaml"
    run("export", "--out", str(again))
    assert again.read_text() == text
    assert (
        Event.objects.filter(action__endswith="freeze_window.created", id__gt=before).count() == 3
    )
    out, _ = run("import", str(exported))
    assert "FreezeWindow" not in out
    assert Event.objects.filter(action__contains="freeze_window.", id__gt=before).count() == 3


@pytest.mark.django_db
def test_an_edit_replaces_and_a_bad_freeze_rolls_back(world: Any, tmp_path: Path) -> None:
    configure(world)
    exported = tmp_path / "all.yaml"
    run("export", "--out", str(exported))
    text = exported.read_text().replace("durationMinutes: 3840", "durationMinutes: 3000")
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    out, _ = run("import", "--dry-run", str(path))
    assert (
        "~ FreezeWindow/production (spec.recurring[0], spec.recurring: remove production weekend"
        in out
    )
    # a bad value anywhere: nothing at all is written
    path.write_text(
        text.replace("- fri\n", "- caturday\n", 1).replace(
            "endsAt: '2027-01-04T00:00:00Z'", "endsAt: '2026-12-01T00:00:00Z'"
        )
    )
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("catalog", "import", str(path), stdout=StringIO(), stderr=err)
    message = err.getvalue()
    assert "FreezeWindow/production: spec.windows[0].endsAt: must be after starts_at" in message
    assert "FreezeWindow/production: spec.recurring[0].days:" in message
    assert RecurringFreezeWindow.objects.get(name="weekend").duration_minutes == 3840
    # the good file applies: the weekend freeze replaced, the rest kept
    path.write_text(text)
    run("import", str(path))
    assert RecurringFreezeWindow.objects.get(name="weekend").duration_minutes == 3000
    assert FreezeWindow.objects.count() == 1 and RecurringFreezeWindow.objects.count() == 2


@pytest.mark.django_db
def test_only_an_admin_changes_freezes_and_prune_deletes(world: Any, api_as: Any) -> None:
    configure(world)
    exported = api_as("admin").get("/api/v1/catalog/export").content.decode()
    documents = [d for d in yaml.safe_load_all(exported) if d]
    kept = [
        d
        for d in documents
        if not (d["kind"] == "FreezeWindow" and d["metadata"]["environment"] == "staging")
    ]
    text = yaml.safe_dump_all(kept)
    # a team owner may not: environments are platform-wide, as in the freeze API
    changed = text.replace("reason: nobody on call", "reason: on call is off")
    response = api_as("owner").post(
        "/api/v1/catalog/import", {"filename": "c.yaml", "yaml": changed}, format="json"
    )
    assert response.status_code == 403, response.content
    assert (
        "only a platform admin may change: FreezeWindow/production"
        in (response.json()["error"]["message"])
    )
    assert RecurringFreezeWindow.objects.get(name="weekend").reason == "nobody on call"
    # an admin prunes staging's freezes (the plan first, then for real)
    response = api_as("admin").post(
        "/api/v1/catalog/import?prune=1&dry_run=1",
        {"filename": "c.yaml", "yaml": text},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["changes"] == [
        {"kind": "FreezeWindow", "name": "staging", "action": "deleted", "fields": []}
    ]
    response = api_as("admin").post(
        "/api/v1/catalog/import?prune=1", {"filename": "c.yaml", "yaml": text}, format="json"
    )
    assert response.status_code == 200, response.content
    assert not RecurringFreezeWindow.objects.filter(environment=world.staging).exists()
    assert RecurringFreezeWindow.objects.filter(environment=world.production).exists()
