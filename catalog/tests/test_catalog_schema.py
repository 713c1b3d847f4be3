"""The catalog's JSON Schema: valid, served to editors, true to what the import accepts."""

from __future__ import annotations

import re
import textwrap
from io import StringIO
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db import models
from jsonschema import Draft202012Validator
from rest_framework.test import APIClient

from catalog.catalog_yaml import CatalogInvalid, Kind, Problem, Source, import_catalog
from catalog.catalog_yaml.export import export_catalog
from catalog.catalog_yaml.extensions import EXTRA_KINDS
from catalog.catalog_yaml.kinds import ATTRS, MODEL_OF
from catalog.catalog_yaml.schema import (
    REF_FORMAT,
    SCHEMA,
    SCHEMA_KINDS,
    VALIDATOR_FOR,
    VALIDATOR_FOR_ANY,
    CatalogValidator,
)
from catalog.choices import Role, StatusSource, Tier
from catalog.models import Team, slug_validator
from fleet.plan import build_plan, write_plan

SCHEMA_PATH = "/api/v1/catalog/schema.json"
DEFS = SCHEMA["$defs"]
# Where each kind's metadata and spec are described in the file.
SECTIONS_OF = {
    Kind.TEAM: ("describedMetadata", "teamSpec"),
    Kind.ENVIRONMENT: ("environmentMetadata", "environmentSpec"),
    Kind.EXTERNAL: ("describedMetadata", "externalDependencySpec"),
    Kind.SERVICE: ("describedMetadata", "serviceSpec"),
}
BROKEN = """\
apiVersion: signalbox.dev/v1
kind: Service
metadata:
  name: web
spec:
  owner: payments
  tier: high
  dependsOn:
    - service:checkout
    - checkout
---
apiVersion: signalbox.dev/v1
kind: Team
metadata: {name: web-team}
spec:
  slackChannel: "#web"
  colour: blue
---
apiVersion: signalbox.dev/v1
kind: Service
metadata:
  name: api
spec:
  tier: 2
"""


@pytest.fixture
def demo_catalog(demo_settings: Path) -> None:
    """The catalog `make run` seeds from fleet/demo.yaml, with what the plan leaves blank."""
    plan = demo_settings / "demo-fleet.json"
    write_plan(build_plan(Path("fleet/demo.yaml"), base_port=7100, control_port=7900), plan)
    call_command("seed_demo", "--fleet", str(plan), stdout=StringIO(), stderr=StringIO())
    Team.objects.filter(slug="storefront").update(
        description="The shop's pages.", slack_channel="#storefront"
    )


def problems_in(text: str) -> list[Problem]:
    with pytest.raises(CatalogInvalid) as caught:
        import_catalog([Source("c.yaml", text)])
    return caught.value.problems


def definition(kind: Kind, path: str) -> dict[str, Any]:
    """The schema of one field of a kind (`spec.tier`), its $ref followed."""
    section, key = path.split(".", 1)
    metadata, spec = SECTIONS_OF[kind]
    described = DEFS[spec if section == "spec" else metadata]["properties"][key]
    if "$ref" not in described:
        return dict(described)
    return {**DEFS[described["$ref"].removeprefix("#/$defs/")], **described}


# --- the schema itself ----------------------------------------------------------------


def test_it_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_it_agrees_with_the_models_and_the_import() -> None:
    # the names, kinds, roles and tiers the import and the models accept
    name = DEFS["name"]
    assert (name["pattern"], name["patternErrorMessage"]) == (
        re.compile(slug_validator.regex).pattern,
        slug_validator.message,
    )
    assert SCHEMA["properties"]["kind"]["enum"] == [*Kind, *EXTRA_KINDS]
    assert [*Kind, *EXTRA_KINDS] == SCHEMA_KINDS
    assert DEFS["teamSpec"]["properties"]["members"]["additionalProperties"]["enum"] == Role.values
    assert DEFS["serviceSpec"]["properties"]["tier"]["enum"] == [*Tier.values, None]
    source = DEFS["externalDependencySpec"]["properties"]["statusSource"]
    assert source["enum"] == StatusSource.values
    depends_on = DEFS["serviceSpec"]["properties"]["dependsOn"]["items"]
    assert depends_on["patternErrorMessage"] == REF_FORMAT
    # and every column of every kind, with its model field's length limit
    for kind, attrs in ATTRS.items():
        for attr in attrs:
            field = cast("models.Field[Any, Any]", MODEL_OF[kind]._meta.get_field(attr.field))
            limit = field.max_length if isinstance(field, models.CharField) else None
            assert definition(kind, attr.path).get("maxLength") == limit, attr.path


def test_its_fast_path_finds_what_the_file_says() -> None:
    # given documents of every kind, good and bad, and the schema exactly as published
    documents = [*yaml.safe_load_all(BROKEN), *yaml.safe_load_all(BROKEN.replace("tier", "x"))]
    documents += [{"kind": "Environment", "metadata": {"name": "qa"}, "spec": {"order": -1}}]
    documents += [{"kind": "Gadget", "spec": []}, ["not", "a", "mapping"]]
    as_published = CatalogValidator(SCHEMA)

    def errors(validator: Any, document: Any) -> list[tuple[str, str]]:
        found = validator.iter_errors(document)
        return sorted((str(list(e.absolute_path)), str(e.validator)) for e in found)

    # when each is checked both ways, then both find the same errors
    for document in documents:
        kind = document.get("kind") if isinstance(document, dict) else None
        fast = VALIDATOR_FOR.get(kind, VALIDATOR_FOR_ANY) if kind else VALIDATOR_FOR_ANY
        assert errors(fast, document) == errors(as_published, document), document


# --- served to editors ----------------------------------------------------------------


@pytest.mark.django_db
def test_it_serves_the_schema_to_anyone() -> None:
    # when an editor, which sends no credentials, fetches it
    response = APIClient().get(SCHEMA_PATH, HTTP_ACCEPT="application/schema+json")
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/schema+json"
    served = response.json()
    assert served.pop("$id") == "http://testserver" + SCHEMA_PATH
    assert served == SCHEMA
    Draft202012Validator.check_schema(served)


@pytest.mark.django_db
def test_the_export_names_the_schema_for_editors(world: Any, settings: Any) -> None:
    # given the address people reach this Signalbox at
    settings.SIGNALBOX_BASE_URL = "https://signalbox.example/"
    # when
    first_line = export_catalog().splitlines()[0]
    # then
    assert first_line == f"# yaml-language-server: $schema=https://signalbox.example{SCHEMA_PATH}"


@pytest.mark.django_db
def test_it_accepts_every_document_the_demo_exports(demo_catalog: None) -> None:
    # given the demo catalog as its export writes it
    documents = list(yaml.safe_load_all(export_catalog()))
    # then the schema as published accepts each document, and every kind is there
    validator = Draft202012Validator(SCHEMA)
    for document in documents:
        assert not list(validator.iter_errors(document)), document
    assert {d["kind"] for d in documents} == {*Kind, "AlertRule"}  # every team's rules
    assert any("members" in d["spec"] and "slackChannel" in d["spec"] for d in documents)


# --- problems, where they are ---------------------------------------------------------


@pytest.mark.django_db
def test_it_gives_each_problem_its_line_and_column(world: Any) -> None:
    # when
    problems = problems_in(BROKEN)
    # then
    assert [(str(p), p.line, p.column) for p in problems] == [
        ("c.yaml#1 Service/web: spec.tier: must be an integer", 7, 9),
        ("c.yaml#1 Service/web: spec.dependsOn[1]: must be service:NAME or external:NAME", 10, 7),
        (
            "c.yaml#2 Team/web-team: spec.colour: unknown field; allowed here: "
            "slackChannel, members",
            17,
            3,
        ),
        (
            "c.yaml#3 Service/api: spec.owner: missing; name the owning team's metadata.name",
            23,
            1,
        ),
    ]


@pytest.mark.django_db
def test_it_prints_the_line_of_each_problem(world: Any, tmp_path: Path) -> None:
    # given
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    err = StringIO()
    # when
    with pytest.raises(CommandError, match="4 problem"):
        call_command("catalog", "import", str(path), stdout=StringIO(), stderr=err)
    # then
    assert (
        f"error: {path}#1 Service/web: spec.tier: must be an integer (line 7, column 9)\n"
        in err.getvalue()
    )


@pytest.mark.django_db
def test_it_counts_a_key_without_a_value_as_left_out(world: Any) -> None:
    # given a team whose file leaves its title, description and spec empty
    text = textwrap.dedent(
        """
        apiVersion: signalbox.dev/v1
        kind: Team
        metadata:
          name: ops
          title:
          description:
        spec:
        """
    )
    # when
    result = import_catalog([Source("c.yaml", text)])
    # then the import and the schema as published both accept it
    assert result.counts["created"] == 1
    assert Team.objects.get(slug="ops").name == "ops"
    assert not list(Draft202012Validator(SCHEMA).iter_errors(yaml.safe_load(text)))
