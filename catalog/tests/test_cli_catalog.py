"""`signalbox catalog diff|apply|export` against a live server: a team keeping its part of the
catalog in git, checking drift in CI and applying on merge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catalog.models import ApiToken, Service
from deployments.tests.conftest import run_cli

pytestmark = pytest.mark.django_db(transaction=True)

CHECKOUT = """apiVersion: signalbox.dev/v1
kind: Service
metadata:
  name: checkout
  title: Checkout
spec:
  owner: payments
  tier: 1
"""
# A comment first, then two documents: the second names a service the first declares.
LEDGER_AND_BILLING = """# the money services
---
apiVersion: signalbox.dev/v1
kind: Service
metadata:
  name: ledger
spec:
  owner: payments
---
apiVersion: signalbox.dev/v1
kind: Service
metadata:
  name: billing
spec:
  owner: {owner}
  dependsOn: [service:ledger, service:checkout]
"""


def _env(world: Any, live_server: Any, scopes: list[str]) -> dict[str, str]:
    _, plain = ApiToken.issue(team=world.team, name="-".join(["git", *scopes]), scopes=scopes)
    return {"SIGNALBOX_URL": live_server.url, "SIGNALBOX_TOKEN": plain}


def _files(root: Path, owner: str = "payments") -> Path:
    (root / "services").mkdir(parents=True)
    (root / "services" / "checkout.yaml").write_text(CHECKOUT)
    (root / "services" / "money.yml").write_text(LEDGER_AND_BILLING.format(owner=owner))
    (root / "README.md").write_text("not YAML, not read")
    return root


def test_diff_shows_the_plan_and_apply_makes_it_so(
    world: Any, live_server: Any, tmp_path: Path
) -> None:
    env = _env(world, live_server, ["read", "write"])
    root = _files(tmp_path / "catalog")
    code, out, err = run_cli(env, "catalog", "diff", str(root))
    assert code == 1, err  # there are changes
    lines = out.splitlines()
    assert sorted(lines[:3]) == [
        "  + Service/billing",
        "  + Service/ledger",
        "  ~ Service/checkout (spec.tier)",
    ]
    assert lines[3:] == [
        "Dry run, nothing written. Would be: 2 created, 1 updated, 0 unchanged, 0 deleted."
    ]
    assert not Service.objects.filter(slug__in=["ledger", "billing"]).exists()
    code, out, _ = run_cli(env, "catalog", "diff", str(root), "-o", "json")
    plan = json.loads(out)
    assert code == 1 and plan["dry_run"] is True and plan["created"] == 2

    code, out, err = run_cli(env, "catalog", "apply", str(root))
    assert code == 0, err
    assert out.splitlines()[-1] == "Imported: 2 created, 1 updated, 0 unchanged, 0 deleted."
    billing = Service.objects.get(slug="billing")
    assert billing.team == world.team
    assert Service.objects.get(slug="checkout").tier == 1

    code, out, _ = run_cli(env, "catalog", "diff", str(root))
    assert code == 0  # no drift
    assert (
        out.strip() == "Dry run, nothing written. Would be: 0 created, 0 updated, "
        "3 unchanged, 0 deleted."
    )

    code, out, _ = run_cli(env, "catalog", "export")
    assert code == 0 and "name: billing\n" in out and "- service:ledger\n" in out
    target = tmp_path / "exported.yaml"
    code, out, _ = run_cli(env, "catalog", "export", "--out", str(target))
    assert code == 0 and "name: ledger\n" in target.read_text()


def test_problems_are_named_by_file_and_document(
    world: Any, live_server: Any, tmp_path: Path
) -> None:
    env = _env(world, live_server, ["read", "write"])
    root = _files(tmp_path / "catalog", owner="paymnts")
    code, out, err = run_cli(env, "catalog", "apply", str(root))
    assert code == 6, (out, err)
    money = root / "services" / "money.yml"
    # the API saw one text; the CLI tells the file and its own document number back
    assert f"signalbox: error: {money}#2 Service/billing: spec.owner: Team/paymnts" in err
    assert "nothing was imported" in err
    assert not Service.objects.filter(slug="ledger").exists()  # all or nothing
    # broken YAML never leaves the machine: the file and line are named
    (root / "services" / "checkout.yaml").write_text("kind: Service\nmetadata: [oops\n")
    code, _, err = run_cli(env, "catalog", "diff", str(root))
    assert code == 2 and f"{root / 'services' / 'checkout.yaml'}: not valid YAML (line" in err
    code, _, err = run_cli(env, "catalog", "diff", str(tmp_path / "nowhere"))
    assert code == 2 and "no such file or directory" in err
    # a token without write is refused, with the reason
    reader = _env(world, live_server, ["read"])
    code, _, err = run_cli(reader, "catalog", "diff", str(_files(tmp_path / "again")))
    assert code == 6 and "403" in err
