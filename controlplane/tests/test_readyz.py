"""/readyz fails, naming the check, for each thing a broken deployment lacks.

Each failure is produced for real: a static root without collectstatic's output, a manifest
without an entry the login page needs, a migration recorded as not applied, a database and
a Redis on ports nobody listens on.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

pytestmark = pytest.mark.django_db

MANIFEST_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"


def statuses(body: dict[str, Any]) -> dict[str, str]:
    return {name: entries[0]["status"] for name, entries in body["checks"].items()}


def readyz(client: Client) -> tuple[int, dict[str, Any]]:
    client.get("/readyz")  # a first call loads templates and migrations: not what is measured
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/health+json"
    return response.status_code, response.json()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


@pytest.fixture
def production_storage(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """Production's static storage over a STATIC_ROOT of this test's own (empty)."""
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STATIC_ROOT.mkdir()
    settings.STORAGES = {
        **settings.STORAGES, "staticfiles": {"BACKEND": MANIFEST_STORAGE}
    }
    yield settings.STATIC_ROOT


def test_readyz_passes_with_production_storage_after_collectstatic(
    client: Client, production_storage: Path, settings: Any
) -> None:
    call_command("collectstatic", "--no-input", verbosity=0)
    settings.STORAGES = {**settings.STORAGES}  # a new storage reads the manifest just written
    status, body = readyz(client)
    assert status == 200, body
    assert set(statuses(body).values()) == {"pass"}


def test_readyz_fails_naming_the_static_manifest_when_collectstatic_did_not_run(
    client: Client, production_storage: Path
) -> None:
    status, body = readyz(client)
    assert status == 503
    assert body["status"] == "fail"
    assert "staticfiles" in body["output"]
    check = body["checks"]["staticfiles:manifest"][0]
    assert check["status"] == "fail"
    assert "no static manifest (staticfiles.json)" in check["output"]
    assert "collectstatic" in check["output"]
    assert statuses(body)["postgresql:responseTime"] == "pass"
    # and the page a user would open fails the same way: the template check says so
    assert statuses(body)["templates:render"] == "fail"


def test_readyz_names_the_manifest_entry_a_page_is_missing(
    client: Client, production_storage: Path, settings: Any
) -> None:
    # given a manifest from another build: everything but the CSS framework the pages load
    call_command("collectstatic", "--no-input", verbosity=0)
    manifest_file = production_storage / "staticfiles.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["paths"]["vendor/pico/pico.min.css"]
    manifest_file.write_text(json.dumps(manifest))
    settings.STORAGES = {**settings.STORAGES}
    status, body = readyz(client)
    assert status == 503
    assert statuses(body)["staticfiles:manifest"] == "pass"
    template = body["checks"]["templates:render"][0]
    assert template["status"] == "fail"
    assert "vendor/pico/pico.min.css" in template["output"]
    assert body["output"] == "down: templates"


def test_readyz_fails_when_the_manifest_names_files_that_are_gone(
    client: Client, production_storage: Path, settings: Any
) -> None:
    # given collectstatic's manifest, but the files themselves lost (a volume over them)
    call_command("collectstatic", "--no-input", verbosity=0)
    settings.STORAGES = {**settings.STORAGES}
    shutil.rmtree(production_storage / "vendor")
    status, body = readyz(client)
    assert status == 503
    check = body["checks"]["staticfiles:manifest"][0]
    assert check["status"] == "fail"
    assert "missing from" in check["output"]


@pytest.mark.django_db(transaction=True)
def test_readyz_fails_naming_an_unapplied_migration(client: Client) -> None:
    # given the newest migration of an app recorded as not applied, as a web process sees
    # a database that `migrate` has not finished with
    recorder = MigrationRecorder(connections["default"])
    app, name = max(
        (key for key in recorder.applied_migrations() if key[0] == "alerts"),
        key=lambda key: key[1],
    )
    recorder.record_unapplied(app, name)
    try:
        status, body = readyz(client)
    finally:
        recorder.record_applied(app, name)
    assert status == 503
    check = body["checks"]["migrations:applied"][0]
    assert check["status"] == "fail"
    assert f"1 unapplied: {app}.{name}" in check["output"]
    assert "manage.py migrate" in check["output"]
    assert body["output"] == "down: migrations"
    # and once applied again, ready
    assert readyz(client)[0] == 200


def test_readyz_fails_naming_the_database_when_nothing_listens(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = connections["default"]
    readyz(client)  # warm
    monkeypatch.setitem(database.settings_dict, "PORT", str(closed_port()))
    body = client.get("/readyz")
    assert body.status_code == 503
    checks = body.json()["checks"]
    assert checks["postgresql:responseTime"][0]["status"] == "fail"
    assert "OperationalError" in checks["postgresql:responseTime"][0]["output"]
    # the migrations cannot be checked without it: said so, not counted as a second failure
    migrations = checks["migrations:applied"][0]
    assert migrations["status"] == "warn"
    assert migrations["output"] == "not checked: the database cannot be reached"
    assert checks["redis:responseTime"][0]["status"] == "pass"
    assert body.json()["output"] == "down: postgresql"


def test_readyz_fails_naming_redis_on_a_closed_port(client: Client, settings: Any) -> None:
    readyz(client)  # warm
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert statuses(body)["redis:responseTime"] == "fail"
    assert "ConnectionError" in body["checks"]["redis:responseTime"][0]["output"]
    assert statuses(body)["broker:responseTime"] == "pass"  # the broker is set on its own
    assert body["output"] == "down: redis"
