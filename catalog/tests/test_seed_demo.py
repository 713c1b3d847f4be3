"""`manage.py seed_demo`: the demo's people, catalog and instances, safe to run again."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from catalog.choices import Lifecycle, Role
from catalog.models import ApiToken, Environment, ExternalDependency, Instance, Service, Team
from controlplane.models import Event

SAMPLE_PLAN = {
    "control": {"host": "127.0.0.1", "port": 7900},
    "teams": [
        {"slug": "storefront", "name": "Storefront"},
        {"slug": "commerce", "name": "Commerce"},
    ],
    "environments": [
        {"slug": "staging", "name": "Staging", "order": 10, "is_production": False},
        {"slug": "production", "name": "Production", "order": 20, "is_production": True},
    ],
    "external_dependencies": [
        {
            "slug": "stripe",
            "name": "Stripe",
            "status_page_url": "http://127.0.0.1:8950",
            "status_source": "statuspage",
            "status_components": ["API"],
            "probe_url": "http://127.0.0.1:8950/v1/ping",
        }
    ],
    "services": [
        {
            "slug": "web",
            "name": "Web",
            "team": "storefront",
            "tier": 1,
            "description": "Pages.",
            "depends_on": ["checkout"],
            "external": [],
            "repository_url": "https://git.example.com/web",
            "runbook_url": "",
        },
        {
            "slug": "checkout",
            "name": "Checkout",
            "team": "commerce",
            "tier": 1,
            "description": "",
            "depends_on": [],
            "external": ["stripe"],
            "repository_url": "",
            "runbook_url": "https://wiki.example.com/checkout",
        },
    ],
    "instances": [
        {
            "id": f"{service}-{env}-1",
            "service": service,
            "environment": env,
            "host": "127.0.0.1",
            "port": port,
            "version": "1.0.0",
            "zone": "zone-a",
            "grpc_port": None,
        }
        for port, (service, env) in enumerate(
            [
                ("web", "staging"),
                ("web", "production"),
                ("checkout", "staging"),
                ("checkout", "production"),
            ],
            start=7101,
        )
    ],
}


@pytest.fixture
def demo(demo_settings: Path) -> Path:
    """A fleet plan file, with the demo settings."""
    plan = demo_settings / "fleet.json"
    plan.write_text(json.dumps(SAMPLE_PLAN))
    return plan


def seed(plan: Path) -> str:
    out = StringIO()
    call_command("seed_demo", "--fleet", str(plan), stdout=out, stderr=StringIO())
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        "users": get_user_model().objects.count(),
        "teams": Team.objects.count(),
        "environments": Environment.objects.count(),
        "externals": ExternalDependency.objects.count(),
        "services": Service.objects.count(),
        "instances": Instance.objects.count(),
        "tokens": ApiToken.objects.count(),
        "events": Event.objects.count(),
    }


@pytest.mark.django_db
def test_seeding_twice_changes_nothing_the_second_time(demo: Path, tmp_path: Path) -> None:
    # given
    first = seed(demo)
    after_first = counts()
    password = (tmp_path / "demo_password").read_text().strip()
    # when
    second = seed(demo)
    # then
    assert counts() == after_first
    assert after_first | {"events": 0} == {
        "users": 7,
        "teams": 2,
        "environments": 2,
        "externals": 1,
        "services": 2,
        "instances": 4,
        "tokens": 3,  # the demo token, and a report token per team for the fleet
        "events": 0,
    }
    assert (tmp_path / "demo_password").read_text().strip() == password
    assert f"Log in as admin with password {password}" in first
    assert f"Log in as admin with password {password}" in second
    assert "Catalog: 0 created, 0 updated, 7 unchanged, 0 deleted." in second
    assert "Instances: 0 created, 0 updated, 4 unchanged." in second


@pytest.mark.django_db
def test_it_prints_the_demo_token_once_and_stores_only_its_hash(demo: Path) -> None:
    first, second = seed(demo), seed(demo)
    plain = re.search(r"(sbx_\S+)", first)
    assert plain is not None
    token = ApiToken.find(plain.group(1))
    assert token is not None and token.team.slug == "storefront"
    assert plain.group(1) not in token.key_hash
    assert "sbx_" not in second


@pytest.mark.django_db
def test_each_team_gets_a_report_token_for_the_fleet_kept_while_it_works(
    demo: Path, tmp_path: Path
) -> None:
    first = seed(demo)
    path = tmp_path / "report-tokens.json"
    assert "Report tokens for the fleet's metrics: 2 issued, 0 kept" in first
    assert path.stat().st_mode & 0o777 == 0o600
    tokens = json.loads(path.read_text())
    assert set(tokens) == {"storefront", "commerce"}
    for team, plain in tokens.items():
        token = ApiToken.find(plain)
        assert token is not None and token.team.slug == team and token.scopes == ["report"]
        assert plain not in first  # never printed
    # a second run keeps them
    assert "2 kept" in seed(demo) and json.loads(path.read_text()) == tokens
    # a lost file: new tokens, and the old ones (whose secret only the file held) revoked
    path.unlink()
    assert "2 issued" in seed(demo)
    assert all(ApiToken.find(plain) is None for plain in tokens.values())
    assert ApiToken.objects.active().filter(name="demo-fleet-report").count() == 2


@pytest.mark.django_db
def test_demo_people_log_in_with_the_admin_password(demo: Path, tmp_path: Path) -> None:
    seed(demo)
    password = (tmp_path / "demo_password").read_text().strip()
    users = get_user_model().objects
    admin = users.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    storefront = Team.objects.get(slug="storefront")
    assert {m.user.username: m.role for m in storefront.memberships.select_related("user")} == {
        "alice": Role.OWNER,
        "bob": Role.DEPLOYER,
        "carol": Role.VIEWER,
    }
    assert users.get(username="dave").check_password(password)


@pytest.mark.django_db
def test_the_password_comes_from_the_environment_when_set(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a demo seeded with a generated password
    seed(demo)
    # when the operator sets one
    monkeypatch.setenv("SIGNALBOX_DEMO_PASSWORD", "correct-horse")
    (tmp_path / "demo_password").unlink()
    out = seed(demo)
    # then admin and the demo people all use it
    users = get_user_model().objects
    assert users.get(username="admin").check_password("correct-horse")
    assert users.get(username="bob").check_password("correct-horse")
    assert "Log in as admin with password correct-horse" in out
    assert not (tmp_path / "demo_password").exists()


@pytest.mark.django_db
def test_it_registers_the_fleet_as_active_instances_and_follows_the_plan(demo: Path) -> None:
    # given
    seed(demo)
    plan = json.loads(demo.read_text())
    plan["instances"][0]["version"] = "1.1.0"
    demo.write_text(json.dumps(plan))
    # when
    out = seed(demo)
    # then
    web = Instance.objects.get(service__slug="web", environment__slug="staging")
    assert (web.version, web.lifecycle, web.labels) == (
        "1.1.0",
        Lifecycle.ACTIVE,
        {"fleet_id": "web-staging-1", "circuits.prometheus_path": "/metrics"},
    )
    assert "Instances: 0 created, 1 updated, 3 unchanged." in out
    checkout = Service.objects.get(slug="checkout")
    assert [x.slug for x in checkout.external_dependencies.all()] == ["stripe"]
    stripe = checkout.external_dependencies.get()
    assert (stripe.status_source, stripe.status_components, stripe.probe_url) == (
        "statuspage",
        ["API"],
        "http://127.0.0.1:8950/v1/ping",
    )
    assert Event.objects.filter(action="instance.updated", service__slug="web").count() == 1


@pytest.mark.django_db
def test_it_says_how_to_make_a_missing_plan(demo: Path, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"python -m fleet plan --config fleet/demo\.yaml"):
        seed(tmp_path / "nowhere.json")


@pytest.mark.django_db
def test_the_real_demo_fleet_plan_seeds_cleanly(demo: Path, tmp_path: Path) -> None:
    # given the plan `make run` writes (fleet code only, no processes started)
    from fleet.plan import build_plan, write_plan

    plan_path = tmp_path / "demo-fleet.json"
    write_plan(build_plan(Path("fleet/demo.yaml"), base_port=7100, control_port=7900), plan_path)
    # when
    out = seed(plan_path)
    # then
    planned = json.loads(plan_path.read_text())
    assert Service.objects.count() == len(planned["services"])
    assert Instance.objects.filter(lifecycle=Lifecycle.ACTIVE).count() == len(planned["instances"])
    assert "Catalog: 0 created" in seed(plan_path)
    assert "team storefront: alice (owner), bob (deployer), carol (viewer)" in out
