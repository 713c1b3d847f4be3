"""Catalog as code: YAML import (all or nothing, upsert, prune) and export, by command and API."""

from __future__ import annotations

import textwrap
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command

from catalog.catalog_yaml import (
    Action,
    CatalogInvalid,
    Kind,
    Source,
    export_catalog,
    import_catalog,
)
from catalog.choices import Lifecycle, Role
from catalog.models import (
    Environment,
    ExternalDependency,
    Instance,
    Membership,
    Service,
    Team,
)
from catalog.tests.as_code import run
from controlplane.models import Event

STOREFRONT = """
apiVersion: signalbox.dev/v1
kind: Team
metadata:
  name: storefront
  title: Storefront
  description: The shop's pages.
spec:
  slackChannel: "#storefront"
  members:
    viewer: owner
---
apiVersion: signalbox.dev/v1
kind: ExternalDependency
metadata: {name: stripe, title: Stripe}
spec: {statusPage: "https://status.stripe.com/"}
---
apiVersion: signalbox.dev/v1
kind: Service
metadata: {name: web, title: Web}
spec:
  owner: storefront
  tier: 1
  repository: https://git.example.com/web
  dependsOn: [service:checkout, external:stripe]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(text: str, name: str = "c.yaml", **kwargs: Any) -> dict[str, list[str]]:
    with pytest.raises(CatalogInvalid) as caught:
        import_catalog([Source(name, textwrap.dedent(text))], **kwargs)
    return caught.value.as_fields()


@pytest.fixture
def rich_world(world: Any) -> Any:
    """The shared world plus the parts export must carry: URLs, dependencies, externals."""
    stripe = ExternalDependency.objects.create(
        slug="stripe", name="Stripe", status_page_url="https://status.stripe.com/"
    )
    world.team.slack_channel = "#payments"
    world.team.description = "Money in, money out."
    world.team.save()
    world.service.tier = 1
    world.service.runbook_url = "https://wiki.example.com/checkout"
    world.service.save()
    world.service.depends_on.add(world.other_service)
    world.service.external_dependencies.add(stripe)
    world.other_service.depends_on.add(world.service)  # a cycle, as real systems have
    return world


# --- round trip and upsert ------------------------------------------------------------


@pytest.mark.django_db
def test_it_exports_imports_and_exports_the_same_bytes(rich_world: Any) -> None:
    # given
    first = export_catalog()
    # when the catalog is wiped and rebuilt from its own export
    Service.objects.all().delete()
    Team.objects.all().delete()
    Environment.objects.all().delete()
    ExternalDependency.objects.all().delete()
    result = import_catalog([Source("export.yaml", first)])
    # then (every document: the 7 entities and the kinds other apps add, the teams' rules)
    documents = len(list(yaml.safe_load_all(first)))
    assert result.counts == {"created": documents, "updated": 0, "unchanged": 0, "deleted": 0}
    assert result.count(Action.CREATED) > 7
    assert export_catalog() == first
    assert Membership.objects.get(user=rich_world.owner).role == Role.OWNER
    checkout = Service.objects.get(slug="checkout")
    assert [s.slug for s in checkout.depends_on.all()] == ["indexer"]
    assert [x.slug for x in checkout.external_dependencies.all()] == ["stripe"]


@pytest.mark.django_db
def test_its_export_reads_like_a_catalog_info_file(rich_world: Any) -> None:
    documents = list(yaml.safe_load_all(export_catalog()))
    checkout = next(d for d in documents if d["metadata"]["name"] == "checkout")
    assert checkout == {
        "apiVersion": "signalbox.dev/v1",
        "kind": "Service",
        "metadata": {"name": "checkout", "title": "Checkout"},
        "spec": {
            "owner": "payments",
            "tier": 1,
            "runbook": "https://wiki.example.com/checkout",
            "dependsOn": ["service:indexer", "external:stripe"],
        },
    }
    assert [d["kind"] for d in documents if d["kind"] in set(Kind)] == [
        "Team",
        "Team",
        "Environment",
        "Environment",
        "ExternalDependency",
        "Service",
        "Service",
    ]


@pytest.mark.django_db
def test_a_reimport_changes_nothing(world: Any, tmp_path: Path) -> None:
    # given
    path = write(tmp_path, "catalog.yaml", STOREFRONT)
    out, _ = run("import", str(path))
    assert "Imported: 3 created, 0 updated, 0 unchanged, 0 deleted." in out
    events = Event.objects.count()
    # when
    out, _ = run("import", str(path))
    # then
    assert "Imported: 0 created, 0 updated, 3 unchanged, 0 deleted." in out
    assert Event.objects.count() == events


@pytest.mark.django_db
def test_it_updates_what_changed_and_says_which_fields(world: Any) -> None:
    # given
    import_catalog([Source("a.yaml", STOREFRONT)])
    edited = STOREFRONT.replace("tier: 1", "tier: 2").replace("service:checkout, ", "")
    # when
    result = import_catalog([Source("a.yaml", edited)], actor=world.admin)
    # then
    assert [(c.label, c.fields) for c in result.changed] == [
        ("Service/web", ["spec.tier", "spec.dependsOn"])
    ]
    web = Service.objects.get(slug="web")
    assert web.tier == 2
    assert list(web.depends_on.all()) == []
    event = Event.objects.filter(action="catalog.imported").first()
    assert event is not None
    assert event.payload["updated"] == 1
    assert event.actor_user == world.admin
    assert Event.objects.filter(action="service.updated", service=web).exists()


@pytest.mark.django_db
def test_it_sets_team_members_from_the_file(world: Any) -> None:
    # given
    import_catalog([Source("a.yaml", STOREFRONT)])
    storefront = Team.objects.get(slug="storefront")
    # when
    import_catalog([Source("a.yaml", STOREFRONT.replace("viewer: owner", "deployer: owner"))])
    # then
    assert [m.user.username for m in storefront.memberships.all()] == ["deployer"]


# --- all or nothing, every problem named ----------------------------------------------


@pytest.mark.django_db
def test_two_broken_files_import_nothing_and_both_are_named(world: Any, tmp_path: Path) -> None:
    # given a good team and a service with a misspelt owner, and a bad environment
    write(tmp_path, "a.yaml", STOREFRONT.replace("owner: storefront", "owner: storefrnt"))
    write(
        tmp_path,
        "b.yml",
        """
        apiVersion: signalbox.dev/v1
        kind: Environment
        metadata: {name: qa}
        spec: {order: "ten", production: false}
        """,
    )
    err = StringIO()
    # when
    missing = str(tmp_path / "missing.yaml")
    with pytest.raises(CommandError, match="3 problem"):
        call_command("catalog", "import", str(tmp_path), missing, stdout=StringIO(), stderr=err)
    # then
    assert f"{tmp_path}/a.yaml#3 Service/web: spec.owner: Team/storefrnt is neither" in (
        err.getvalue()
    )
    assert f"{tmp_path}/b.yml#1 Environment/qa: spec.order: must be an integer" in err.getvalue()
    assert f"{missing}: no such file or directory" in err.getvalue()
    assert not Team.objects.filter(slug="storefront").exists()
    assert not ExternalDependency.objects.exists()


@pytest.mark.django_db
def test_it_names_every_kind_of_mistake(world: Any) -> None:
    fields = problems_of(
        """
        apiVersion: signalbox.dev/v1
        kind: Component
        metadata: {name: web}
        ---
        apiVersion: backstage.io/v1alpha1
        kind: Team
        metadata: {name: ops, colour: red}
        ---
        apiVersion: signalbox.dev/v1
        kind: Service
        metadata: {name: api}
        spec: {tier: 9, dependsOn: [checkout, service:nowhere, external:stripe], replicas: 2}
        ---
        apiVersion: signalbox.dev/v1
        kind: Service
        metadata: {name: checkout}
        spec: {owner: payments}
        ---
        apiVersion: signalbox.dev/v1
        kind: Team
        metadata: {name: Bad_Slug}
        """
    )
    assert set(fields) == {
        "c.yaml#1: kind",
        "c.yaml#2 Team/ops: apiVersion",
        "c.yaml#2 Team/ops: metadata.colour",
        "c.yaml#3 Service/api: spec.replicas",
        "c.yaml#3 Service/api: spec.tier",
        "c.yaml#3 Service/api: spec.owner",
        "c.yaml#3 Service/api: spec.dependsOn[0]",
        "c.yaml#3 Service/api: spec.dependsOn[1]",
        "c.yaml#3 Service/api: spec.dependsOn[2]",
        "c.yaml#5 Team/Bad_Slug: metadata.name",
    }
    assert fields["c.yaml#1: kind"] == [
        "unknown kind 'Component'; use one of Team, Environment, ExternalDependency, Service, "
        "CheckSpec, Heartbeat, MaintenanceWindow, FreezeWindow, RuntimeConfig, AlertChannel, "
        "AlertRoute, AlertRule"
    ]
    assert fields["c.yaml#3 Service/api: spec.replicas"][0].startswith("unknown field")


@pytest.mark.django_db
def test_it_refuses_unknown_targets_duplicates_and_unknown_people(world: Any) -> None:
    fields = problems_of(
        """
        apiVersion: signalbox.dev/v1
        kind: Service
        metadata: {name: api}
        spec: {owner: payments, dependsOn: [service:checkout, service:nowhere, external:x]}
        ---
        apiVersion: signalbox.dev/v1
        kind: Service
        metadata: {name: api}
        spec: {owner: payments}
        ---
        apiVersion: signalbox.dev/v1
        kind: Team
        metadata: {name: payments}
        spec: {members: {nobody: owner, owner: boss}}
        """
    )
    assert fields == {
        "c.yaml#1 Service/api: spec.dependsOn[1]": [
            "Service/nowhere is neither in the files nor in the catalog"
        ],
        "c.yaml#1 Service/api: spec.dependsOn[2]": [
            "ExternalDependency/x is neither in the files nor in the catalog"
        ],
        "c.yaml#2 Service/api: metadata.name": [
            "Service/api is also defined at c.yaml#1 Service/api"
        ],
        "c.yaml#3 Team/payments: spec.members.owner": [
            "unknown role 'boss'; use one of viewer, deployer, owner"
        ],
        "c.yaml#3 Team/payments: spec.members.nobody": [
            "no user 'nobody'; people sign up or are created by an admin first"
        ],
    }


@pytest.mark.django_db
def test_it_reports_bad_yaml_and_repeated_keys_with_their_line(world: Any) -> None:
    fields = problems_of("apiVersion: signalbox.dev/v1\nkind: Team\nkind: Team\n", name="r.yaml")
    assert list(fields) == ["r.yaml#1"]
    assert "found the key 'kind' twice" in fields["r.yaml#1"][0]
    assert "line 3" in fields["r.yaml#1"][0]
    fields = problems_of("kind: [unclosed\n", name="s.yaml")
    assert fields["s.yaml#1"][0].startswith("invalid YAML at line 2")


@pytest.mark.django_db
def test_it_refuses_what_the_database_cannot_store_and_survives_alias_bombs(world: Any) -> None:
    nul = 'apiVersion: signalbox.dev/v1\nkind: Team\nmetadata: {name: x, title: "a\\0b"}\n'
    assert problems_of(nul) == {
        "c.yaml#1 Team/x: metadata.title": [
            "contains a NUL character, which the database cannot store"
        ]
    }
    # nine levels of nine aliases: 9**9 leaves if anything walked the tree naively
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)]
    bomb = "\n".join(lines) + "\nkind: *l8\nmetadata: {name: *l8}\nspec: {dependsOn: *l8}\n"
    fields = problems_of(bomb)
    assert fields["c.yaml#1: kind"] == [
        "unknown kind a list; use one of Team, Environment, ExternalDependency, Service, "
        "CheckSpec, Heartbeat, MaintenanceWindow, FreezeWindow, RuntimeConfig, AlertChannel, "
        "AlertRoute, AlertRule"
    ]
    # and a deep nest is refused, not a crash (libyaml stops at 1,000 levels)
    (message,) = problems_of("[" * 2000 + "]" * 2000)["c.yaml#1"]
    assert "nest" in message  # libyaml: "exceeded maximum nesting depth"


@pytest.mark.django_db
def test_it_accepts_a_dependency_cycle_with_a_warning(world: Any) -> None:
    # given checkout -> indexer already; the file adds indexer -> checkout
    world.service.depends_on.add(world.other_service)
    text = """
        apiVersion: signalbox.dev/v1
        kind: Service
        metadata: {name: indexer, title: Indexer}
        spec: {owner: search, dependsOn: [service:checkout]}
        """
    # when
    result = import_catalog([Source("c.yaml", textwrap.dedent(text))])
    # then
    assert [str(w) for w in result.warnings] == [
        "c.yaml#1 Service/indexer: spec.dependsOn: dependency cycle (allowed, but check it "
        "is real): indexer -> checkout -> indexer"
    ]
    assert [s.slug for s in Service.objects.get(slug="indexer").depends_on.all()] == ["checkout"]


@pytest.mark.django_db
def test_a_cycle_warning_follows_the_real_edges(world: Any) -> None:
    def service(name: str, target: str) -> str:
        return (
            f"apiVersion: signalbox.dev/v1\nkind: Service\nmetadata: {{name: {name}}}\n"
            f"spec: {{owner: payments, dependsOn: [service:{target}]}}\n"
        )

    text = "---\n".join([service("a", "c"), service("c", "b"), service("b", "a")])
    result = import_catalog([Source("c.yaml", text)])
    assert [w.message for w in result.warnings] == [
        "dependency cycle (allowed, but check it is real): a -> c -> b -> a"
    ]


@pytest.mark.django_db
def test_a_dry_run_writes_nothing(world: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", STOREFRONT)
    out, _ = run("import", "--dry-run", str(path))
    assert "+ Service/web" in out
    assert "Dry run, nothing written. Would be: 3 created" in out
    assert not Team.objects.filter(slug="storefront").exists()


# --- prune ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_prune_refuses_to_delete_a_service_with_instances(world: Any, tmp_path: Path) -> None:
    # given indexer runs, and the file declares only the payments side
    Instance.objects.create(
        service=world.other_service,
        environment=world.staging,
        host="10.0.0.1",
        port=80,
        lifecycle=Lifecycle.ACTIVE,
    )
    export = [
        d
        for d in yaml.safe_load_all(export_catalog())
        if d["metadata"]["name"] not in {"indexer", "search"}
    ]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump_all(export))
    err = StringIO()
    # when
    with pytest.raises(CommandError):
        call_command("catalog", "import", "--prune", str(path), stdout=StringIO(), stderr=err)
    # then
    assert "--prune: Service/indexer: not in the files, but 1 instance(s) still run there" in (
        err.getvalue()
    )
    assert Service.objects.filter(slug="indexer").exists()


@pytest.mark.django_db
def test_prune_deletes_what_the_files_leave_out(world: Any) -> None:
    kept = [
        d
        for d in yaml.safe_load_all(export_catalog())
        if d["metadata"].get("name") not in {"indexer", "search"}
        and d["metadata"].get("team") != "search"  # the team's alert rules
    ]
    result = import_catalog([Source("c.yaml", yaml.safe_dump_all(kept))], prune=True)
    assert [(c.label, c.action) for c in result.changed if c.kind in set(Kind)] == [
        ("Service/indexer", "deleted"),
        ("Team/search", "deleted"),
    ]
    assert sorted(Team.objects.values_list("slug", flat=True)) == ["payments"]


# --- export command -------------------------------------------------------------------


@pytest.mark.django_db
def test_it_exports_to_a_file(world: Any, tmp_path: Path) -> None:
    out, _ = run("export", "--out", str(tmp_path / "all.yaml"))
    assert "Exported the catalog to" in out
    assert (tmp_path / "all.yaml").read_text() == export_catalog()


# --- API ------------------------------------------------------------------------------

CHECKOUT_TIER_2 = """
apiVersion: signalbox.dev/v1
kind: Service
metadata: {name: checkout, title: Checkout}
spec: {owner: payments, tier: 2}
"""


@pytest.mark.django_db
def test_an_outsider_may_not_import_changes_to_another_team(api_as: Any) -> None:
    response = api_as("outsider").post(
        "/api/v1/catalog/import", CHECKOUT_TIER_2, content_type="application/yaml"
    )
    assert response.status_code == 403
    assert "team payments" in response.json()["error"]["message"]
    assert Service.objects.get(slug="checkout").tier == 3


@pytest.mark.django_db
def test_the_owner_imports_yaml_for_their_team(api_as: Any) -> None:
    response = api_as("owner").post(
        "/api/v1/catalog/import", CHECKOUT_TIER_2, content_type="text/yaml"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "dry_run": False,
        "created": 0,
        "updated": 1,
        "unchanged": 0,
        "deleted": 0,
        "changes": [
            {"kind": "Service", "name": "checkout", "action": "updated", "fields": ["spec.tier"]}
        ],
        "warnings": [],
    }
    assert Service.objects.get(slug="checkout").tier == 2


@pytest.mark.django_db
def test_only_an_admin_may_create_a_team(api_as: Any) -> None:
    team = "apiVersion: signalbox.dev/v1\nkind: Team\nmetadata: {name: ops}\n"
    response = api_as("owner").post("/api/v1/catalog/import", team, content_type="text/yaml")
    assert response.status_code == 403
    assert "only a platform admin may change: Team/ops" in response.json()["error"]["message"]
    response = api_as("admin").post(
        "/api/v1/catalog/import?dry_run=1", {"yaml": team}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["created"] == 1
    assert not Team.objects.filter(slug="ops").exists()


@pytest.mark.django_db
def test_a_misspelt_dry_run_is_refused_and_nothing_is_written(api_as: Any) -> None:
    # when the owner means a dry run but misspells the flag
    response = api_as("owner").post(
        "/api/v1/catalog/import?dryrun=1", CHECKOUT_TIER_2, content_type="text/yaml"
    )
    # then the import is refused, naming the flags it takes, and the catalog is unchanged
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "dryrun": ["unknown parameter; the allowed parameters are: dry_run, format, prune"]
    }
    assert Service.objects.get(slug="checkout").tier == 3


@pytest.mark.django_db
def test_a_token_needs_write_on_the_team(token_client: Any, world: Any) -> None:
    reader, _ = token_client(world.team, ["read"])
    writer, _ = token_client(world.team, ["write"])
    url = "/api/v1/catalog/import"
    assert reader.post(url, CHECKOUT_TIER_2, content_type="text/yaml").status_code == 403
    assert writer.post(url, CHECKOUT_TIER_2, content_type="text/yaml").status_code == 200


@pytest.mark.django_db
def test_bad_yaml_answers_400_with_keyed_fields(api_as: Any) -> None:
    body = {"yaml": CHECKOUT_TIER_2.replace("payments", "nobody"), "filename": "svc.yaml"}
    response = api_as("owner").post("/api/v1/catalog/import", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "svc.yaml#1 Service/checkout: spec.owner": [
            "Team/nobody is neither in the files nor in the catalog"
        ]
    }


@pytest.mark.django_db
def test_anonymous_may_neither_import_nor_export(api_as: Any) -> None:
    client = api_as("anonymous")
    assert client.get("/api/v1/catalog/export").status_code == 401
    response = client.post("/api/v1/catalog/import", CHECKOUT_TIER_2, content_type="text/yaml")
    assert response.status_code == 401


@pytest.mark.django_db
def test_a_viewer_exports_yaml(api_as: Any) -> None:
    response = api_as("viewer").get("/api/v1/catalog/export", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    assert response.content.decode() == export_catalog()
