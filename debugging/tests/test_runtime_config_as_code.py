"""RuntimeConfig documents in catalog files: export, import (all or nothing), plans, secrets.

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
from debugging import config
from debugging.choices import ConfigEvent, Kind
from debugging.models import ConfigVersion

SECRET = "sk_live_0123456789abcdef"


def configure(world: Any) -> None:
    config.change(
        world.service,
        world.production,
        set_items=[
            config.Item(Kind.LOG_LEVEL, "root", "INFO"),
            config.Item(Kind.LOG_LEVEL, "payments.client", "DEBUG"),
            config.Item(Kind.FLAG, "new-checkout", True),
            config.Item(Kind.ENDPOINT, "fraud", "https://fraud.internal:8443/v1"),
            config.Item(Kind.VALUE, "limits", {"max_cart": 50, "currencies": ["EUR", "USD"]}),
            config.Item(Kind.VALUE, "root", "also a value"),
            config.Item(Kind.SECRET, "stripe-key", SECRET),
        ],
        actor="test",
    )


def versions() -> int:
    return ConfigVersion.objects.count()


@pytest.mark.django_db
def test_export_then_import_into_an_empty_catalog_exports_the_same(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a service with a runtime config holding every kind, a secret and a shared key
    configure(world)
    exported = tmp_path / "catalog.yaml"
    run("export", "--out", str(exported))
    text = exported.read_text()
    # then the export carries it, the secret only as a reference to an environment variable
    assert SECRET not in text
    document = next(d for d in yaml.safe_load_all(text) if d["kind"] == "RuntimeConfig")
    assert document["metadata"] == {"service": "checkout", "environment": "production"}
    entries = document["spec"]["entries"]
    assert entries["stripe-key"] == {"kind": "secret", "fromEnv": "SIGNALBOX_SECRET_STRIPE_KEY"}
    assert entries["log_level:root"] == {"kind": "log_level", "value": "INFO"}
    assert entries["value:root"] == {"kind": "value", "value": "also a value"}
    # when the catalog is emptied and the export imported again, the secret in the variable
    Service.objects.all().delete()
    Team.objects.all().delete()
    Environment.objects.all().delete()
    assert versions() == 0
    monkeypatch.setenv("SIGNALBOX_SECRET_STRIPE_KEY", SECRET)
    before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    out, _ = run("import", str(exported))
    assert "+ RuntimeConfig/checkout/production" in out
    # then exporting again gives the same file, and the secret is the one from the variable
    again = tmp_path / "again.yaml"
    run("export", "--out", str(again))
    assert again.read_text() == text
    service = Service.objects.get(slug="checkout")
    production = Environment.objects.get(slug="production")
    latest = config.current(service, production)
    assert config.entries_of(latest)[(Kind.SECRET, "stripe-key")] == SECRET
    # and one audited event says what changed, without the secret
    imported = Event.objects.filter(action=ConfigEvent.CHANGED, id__gt=before)
    event = imported.get()
    assert SECRET not in str(event.payload)
    assert {"kind": "secret", "key": "stripe-key", "value": "(secret)"} in event.payload["diff"][
        "added"
    ]
    # when the same file is imported twice, nothing changes: no new version, no new event
    out, _ = run("import", str(exported))
    assert "RuntimeConfig" not in out
    assert versions() == 1
    assert imported.count() == 1


def catalog_file(tmp_path: Path, runtime: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: signalbox.dev/v1
            kind: Team
            metadata: {name: ledger}
            ---
            apiVersion: signalbox.dev/v1
            kind: Service
            metadata: {name: books}
            spec: {owner: ledger}
            ---
            apiVersion: signalbox.dev/v1
            kind: RuntimeConfig
            metadata: {service: books, environment: staging}
            spec:
              entries:
                root: {kind: log_level, value: WARNING}
            """
        )
        + runtime
    )
    return path


@pytest.mark.django_db
def test_a_bad_level_in_one_document_rolls_back_the_whole_import(
    world: Any, tmp_path: Path
) -> None:
    # given files with a new team, a new service, a good config and one with a bad level
    path = catalog_file(
        tmp_path,
        textwrap.dedent(
            """\
            ---
            apiVersion: signalbox.dev/v1
            kind: RuntimeConfig
            metadata: {service: checkout, environment: production}
            spec:
              entries:
                root: {kind: log_level, value: LOUD}
            """
        ),
    )
    # when they are imported
    with pytest.raises(CommandError):
        call_command("catalog", "import", str(path), stdout=StringIO(), stderr=(err := StringIO()))
    # then the error names the file, the document, the config and the field
    assert (
        f"error: {path}#4 RuntimeConfig/checkout/production: spec.entries.root.value: "
        "unknown level 'LOUD'"
    ) in err.getvalue()
    # and nothing was written, neither the catalog nor the good config
    assert not Team.objects.filter(slug="ledger").exists()
    assert not Service.objects.filter(slug="books").exists()
    assert versions() == 0


@pytest.mark.django_db
def test_a_missing_environment_variable_names_the_key(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEDGER_DB_PASSWORD", raising=False)
    path = catalog_file(tmp_path, "    db-password: {kind: secret, fromEnv: LEDGER_DB_PASSWORD}\n")
    with pytest.raises(CommandError):
        call_command("catalog", "import", str(path), stdout=StringIO(), stderr=(err := StringIO()))
    assert (
        "RuntimeConfig/books/staging: spec.entries.db-password.fromEnv: the environment "
        "variable LEDGER_DB_PASSWORD (secret 'db-password') is not set"
    ) in err.getvalue()
    assert not Service.objects.filter(slug="books").exists()
    # and with the variable set (or the secret in a file), the same files import
    monkeypatch.setenv("LEDGER_DB_PASSWORD", "hunter2")
    secret_file = tmp_path / "api-key"
    secret_file.write_text("from-a-file\n")
    path.write_text(path.read_text() + f"    api-key: {{kind: secret, fromFile: {secret_file}}}\n")
    run("import", str(path))
    version = config.current(Service.objects.get(slug="books"), world.staging)
    assert config.entries_of(version) == {
        (Kind.LOG_LEVEL, "root"): "WARNING",
        (Kind.SECRET, "db-password"): "hunter2",
        (Kind.SECRET, "api-key"): "from-a-file",
    }


@pytest.mark.django_db
def test_a_secret_is_never_inline(world: Any, tmp_path: Path) -> None:
    path = catalog_file(tmp_path, "    db-password: {kind: secret, value: hunter2}\n")
    with pytest.raises(CommandError):
        call_command("catalog", "import", str(path), stdout=StringIO(), stderr=(err := StringIO()))
    assert "spec.entries.db-password.value: a secret is never written in the file" in (
        err.getvalue()
    )


@pytest.mark.django_db
def test_a_dry_run_plans_the_change_and_writes_nothing(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a config, and its export with one flag turned off (the secret as it was)
    configure(world)
    monkeypatch.setenv("SIGNALBOX_SECRET_STRIPE_KEY", SECRET)
    exported = tmp_path / "catalog.yaml"
    run("export", "--out", str(exported))
    documents = list(yaml.safe_load_all(exported.read_text()))
    runtime = next(d for d in documents if d["kind"] == "RuntimeConfig")
    runtime["spec"]["entries"]["new-checkout"]["value"] = False
    exported.write_text(yaml.safe_dump_all(documents))
    # when it is imported as a dry run
    out, _ = run("import", "--dry-run", str(exported))
    # then the plan lists the change, to that key only, and nothing is written
    assert "~ RuntimeConfig/checkout/production (spec.entries.new-checkout)" in out
    assert "0 created, 1 updated" in out
    assert versions() == 1
    # and the real import makes one new version with just that difference
    run("import", str(exported))
    latest = config.current(world.service, world.production)
    assert latest is not None and latest.number == 2
    assert config.entries_of(latest)[(Kind.FLAG, "new-checkout")] is False
    event = Event.objects.filter(action=ConfigEvent.CHANGED).latest("id")
    assert event.payload["diff"]["changed"] == [
        {"kind": "flag", "key": "new-checkout", "before": True, "after": False}
    ]


@pytest.mark.django_db
def test_the_api_never_reads_the_servers_environment(
    world: Any, api_as: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a file posted to the API cannot pull a server variable into a secret it can read back
    monkeypatch.setenv("SIGNALBOX_SECRET_KEY_COPY", "server-only")
    text = textwrap.dedent(
        """\
        apiVersion: signalbox.dev/v1
        kind: RuntimeConfig
        metadata: {service: checkout, environment: production}
        spec:
          entries:
            leak: {kind: secret, fromEnv: SIGNALBOX_SECRET_KEY_COPY}
        """
    )
    response = api_as("owner").post(
        "/api/v1/catalog/import", {"filename": "c.yaml", "yaml": text}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "c.yaml#1 RuntimeConfig/checkout/production: spec.entries.leak.fromEnv" in str(
        response.json()
    )
    assert versions() == 0
    # but one already set is kept as it is, so the API can import an export
    configure(world)
    exported = api_as("owner").get("/api/v1/catalog/export").content.decode()
    runtime = "---\n" + exported.split("kind: RuntimeConfig", 1)[1]
    response = api_as("owner").post(
        "/api/v1/catalog/import",
        {
            "filename": "c.yaml",
            "yaml": "apiVersion: signalbox.dev/v1\nkind: RuntimeConfig" + runtime[4:],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["updated"] == 0 and versions() == 1
    # and someone without write access to the team is refused
    changed = "apiVersion: signalbox.dev/v1\nkind: RuntimeConfig" + runtime[4:].replace(
        "value: INFO", "value: ERROR"
    )
    response = api_as("viewer").post(
        "/api/v1/catalog/import", {"filename": "c.yaml", "yaml": changed}, format="json"
    )
    assert response.status_code == 403, response.content
    assert versions() == 1
