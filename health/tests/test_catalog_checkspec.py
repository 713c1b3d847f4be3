"""CheckSpec documents in catalog files: export, import (all or nothing), plans, prune, access.

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
from health.choices import HealthEvent
from health.models import CheckSpec


def configure(world: Any) -> CheckSpec:
    return CheckSpec.objects.create(
        service=world.service,
        path="/ready",
        expected_statuses="200-299,404",
        headers={"X-Probe": "signalbox"},
        json_conditions=[{"path": "$.status", "op": "eq", "value": "pass"}],
        max_latency_ms=250,
        interval_seconds=15,
        timeout_seconds=2.5,
        failure_threshold=5,
    )


BOOKS = """\
apiVersion: signalbox.dev/v1
kind: Team
metadata: {name: ledger}
---
apiVersion: signalbox.dev/v1
kind: Service
metadata: {name: books}
spec: {owner: ledger}
---
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.django_db
def test_export_then_import_into_an_empty_catalog_exports_the_same(
    world: Any, tmp_path: Path
) -> None:
    # given a service with a check spec that differs from the defaults in many fields
    configure(world)
    CheckSpec.objects.create(service=world.other_service, kind="tcp", port=5432)
    exported = tmp_path / "catalog.yaml"
    run("export", "--out", str(exported))
    text = exported.read_text()
    # then the export carries each spec, by service, with only what is not a default
    documents = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "CheckSpec"]
    assert [d["metadata"] for d in documents] == [{"service": "checkout"}, {"service": "indexer"}]
    assert documents[0]["spec"] == {
        "path": "/ready",
        "headers": {"X-Probe": "signalbox"},
        "expectedStatuses": "200-299,404",
        "jsonConditions": [{"path": "$.status", "op": "eq", "value": "pass"}],
        "maxLatencyMs": 250,
        "intervalSeconds": 15,
        "timeoutSeconds": 2.5,
        "failureThreshold": 5,
    }
    assert documents[1]["spec"] == {"kind": "tcp", "port": 5432}
    # when the catalog is emptied and the export imported again
    Service.objects.all().delete()
    Team.objects.all().delete()
    Environment.objects.all().delete()
    assert CheckSpec.objects.count() == 0
    before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    out, _ = run("import", str(exported))
    assert "+ CheckSpec/checkout" in out and "+ CheckSpec/indexer" in out
    # then exporting again gives the same file
    again = tmp_path / "again.yaml"
    run("export", "--out", str(again))
    assert again.read_text() == text
    # and each spec was created as the API does: one audited event each
    created = Event.objects.filter(action=HealthEvent.CHECK_CREATED, id__gt=before)
    assert created.count() == 2
    # when the same file is imported twice, nothing changes and nothing is published
    out, _ = run("import", str(exported))
    assert "CheckSpec" not in out
    assert Event.objects.filter(action__startswith="health.check", id__gt=before).count() == 2


@pytest.mark.django_db
def test_a_bad_value_in_one_document_rolls_back_the_whole_import(
    world: Any, tmp_path: Path
) -> None:
    # a new team and service, a good spec, and a spec the API would refuse
    path = write(
        tmp_path,
        BOOKS
        + textwrap.dedent(
            """\
        apiVersion: signalbox.dev/v1
        kind: CheckSpec
        metadata: {service: books}
        spec: {path: /health, intervalSeconds: 5}
        ---
        apiVersion: signalbox.dev/v1
        kind: CheckSpec
        metadata: {service: checkout}
        spec: {path: "//evil.example/", intervalSeconds: 5, timeoutSeconds: 9}
        """
        ),
    )
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("catalog", "import", str(path), stdout=StringIO(), stderr=err)
    # the message names the file, document, spec and field, with the API's reason
    message = err.getvalue()
    assert "catalog.yaml#4 CheckSpec/checkout: spec.path: must not start with //" in message
    assert "catalog.yaml#4 CheckSpec/checkout: spec.timeoutSeconds: must not exceed" in message
    # and nothing at all was written: not the team, the service nor the good spec
    assert not Team.objects.filter(slug="ledger").exists()
    assert not Service.objects.filter(slug="books").exists()
    assert CheckSpec.objects.count() == 0


@pytest.mark.django_db
def test_unknown_fields_and_services_are_named(world: Any, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        apiVersion: signalbox.dev/v1
        kind: CheckSpec
        metadata: {service: nowhere}
        spec: {path: /health}
        ---
        apiVersion: signalbox.dev/v1
        kind: CheckSpec
        metadata: {service: checkout}
        spec: {intervalSecs: 5, kind: smtp}
        """,
    )
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("catalog", "import", str(path), stdout=StringIO(), stderr=err)
    message = err.getvalue()
    assert (
        "catalog.yaml#1 CheckSpec/nowhere: metadata.service: "
        "Service/nowhere is neither in the files nor in the catalog"
    ) in message
    assert "catalog.yaml#2 CheckSpec/checkout: spec.intervalSecs" in message
    assert CheckSpec.objects.count() == 0


@pytest.mark.django_db
def test_a_dry_run_plans_the_change_and_writes_nothing(world: Any, tmp_path: Path) -> None:
    spec = configure(world)
    path = write(
        tmp_path,
        """\
        apiVersion: signalbox.dev/v1
        kind: CheckSpec
        metadata: {service: checkout}
        spec: {path: /ready, intervalSeconds: 30}
        ---
        apiVersion: signalbox.dev/v1
        kind: CheckSpec
        metadata: {service: indexer}
        spec: {kind: tcp}
        """,
    )
    out, _ = run("import", "--dry-run", str(path))
    # the fields that would go back to their defaults are in the plan too
    assert "~ CheckSpec/checkout (spec.headers, spec.expectedStatuses, spec.jsonConditions, " in out
    assert "spec.intervalSeconds" in out and "spec.failureThreshold" in out
    assert "+ CheckSpec/indexer" in out
    assert "Dry run, nothing written. Would be: 1 created, 1 updated" in out
    spec.refresh_from_db()
    assert spec.interval_seconds == 15
    assert not CheckSpec.objects.filter(service=world.other_service).exists()
    # applied, the spec is the file's: what it leaves out takes the default
    run("import", str(path))
    spec.refresh_from_db()
    assert (spec.interval_seconds, spec.failure_threshold, spec.headers) == (30, 3, {})
    assert CheckSpec.objects.get(service=world.other_service).kind == "tcp"


@pytest.mark.django_db
def test_prune_deletes_the_specs_the_files_leave_out(world: Any, tmp_path: Path) -> None:
    configure(world)
    CheckSpec.objects.create(service=world.other_service, kind="tcp")
    exported = tmp_path / "all.yaml"
    run("export", "--out", str(exported))
    kept = [
        d
        for d in yaml.safe_load_all(exported.read_text())
        if d and not (d["kind"] == "CheckSpec" and d["metadata"]["service"] == "indexer")
    ]
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump_all(kept))
    # without --prune a spec missing from the files stays
    out, _ = run("import", str(path))
    assert "CheckSpec" not in out
    assert CheckSpec.objects.filter(service=world.other_service).exists()
    # with --prune the plan lists it as deleted, and the import deletes it (one event)
    out, _ = run("import", "--prune", "--dry-run", str(path))
    assert "- CheckSpec/indexer" in out and "CheckSpec/checkout" not in out
    assert CheckSpec.objects.filter(service=world.other_service).exists()
    run("import", "--prune", str(path))
    assert not CheckSpec.objects.filter(service=world.other_service).exists()
    assert CheckSpec.objects.filter(service=world.service).exists()
    assert Event.objects.filter(action=HealthEvent.CHECK_DELETED).count() == 1


CHECKOUT = """\
apiVersion: signalbox.dev/v1
kind: CheckSpec
metadata: {service: checkout}
spec: {path: /ready, intervalSeconds: 20}
"""


@pytest.mark.django_db
def test_the_api_imports_with_the_apis_permissions(world: Any, api_as: Any) -> None:
    # a viewer of the owning team, and an owner of another team, are refused (nothing saved)
    for persona in ("viewer", "outsider"):
        response = api_as(persona).post(
            "/api/v1/catalog/import", {"filename": "c.yaml", "yaml": CHECKOUT}, format="json"
        )
        assert response.status_code == 403, response.content
        assert "team payments" in response.json()["error"]["message"]
    assert CheckSpec.objects.count() == 0
    # a dry run by the owner plans it and writes nothing
    response = api_as("owner").post(
        "/api/v1/catalog/import?dry_run=1", {"filename": "c.yaml", "yaml": CHECKOUT}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["changes"] == [
        {"kind": "CheckSpec", "name": "checkout", "action": "created", "fields": []}
    ]
    assert CheckSpec.objects.count() == 0
    # the owner imports it
    response = api_as("owner").post(
        "/api/v1/catalog/import", {"filename": "c.yaml", "yaml": CHECKOUT}, format="json"
    )
    assert response.status_code == 200, response.content
    assert CheckSpec.objects.get(service=world.service).interval_seconds == 20
    # a bad value answers 400 naming the document and field, and changes nothing
    bad = CHECKOUT.replace("intervalSeconds: 20", "intervalSeconds: 0")
    response = api_as("owner").post(
        "/api/v1/catalog/import", {"filename": "c.yaml", "yaml": bad}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "c.yaml#1 CheckSpec/checkout: spec.intervalSeconds" in str(response.json())
    assert CheckSpec.objects.get(service=world.service).interval_seconds == 20


def test_the_served_schema_lists_the_kind(client: Any) -> None:
    schema = client.get("/api/v1/catalog/schema.json").json()
    assert "CheckSpec" in schema["properties"]["kind"]["enum"]
    spec = schema["$defs"]["checkSpecSpec"]
    assert spec["additionalProperties"] is False
    assert {"intervalSeconds", "jsonConditions", "expectedStatuses"} <= set(spec["properties"])
