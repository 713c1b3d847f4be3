"""Event names are a contract: every app declares its names once (an `EventNames` class in its
choices.py), and publishers, renderers and alert rules use the declared attributes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from controlplane import events
from controlplane.live import EVERY_EVENT

ROOT = Path(__file__).resolve().parents[2]
APPS = [
    "controlplane", "catalog", "health", "circuits", "deployments", "alerts", "statuspage",
    "dashboard",
]


def app_modules() -> list[Path]:
    return [
        path
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "tests" not in path.parts and "migrations" not in path.parts
    ]


def test_every_declared_family_has_names_and_every_name_its_family() -> None:
    names = events.declared_names()
    assert len(names) > 40  # every app declared its own
    for family in events.families():
        assert family.endswith(".")
        assert any(name.startswith(family) for name in names)


def test_a_name_cannot_be_declared_twice_or_outside_its_family() -> None:
    with pytest.raises(TypeError, match="declared by RolloutEvent already"):

        class Again(events.EventNames):
            FAMILY = "rollout."
            DONE = "rollout.succeeded"

    with pytest.raises(TypeError, match=re.escape("must be a name starting with 'thing.'")):

        class Stray(events.EventNames):
            FAMILY = "thing."
            ODD = "other.thing"


def test_no_module_spells_a_declared_event_name_as_a_bare_string() -> None:
    # given every event name and family the apps declare
    declared = events.declared_names() | set(events.families())
    offenders = []
    for path in app_modules():
        if path.name == "choices.py":
            continue  # where the names are declared
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            # then no string literal elsewhere is one of them
            if isinstance(node, ast.Constant) and node.value in declared:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
            # and nothing publishes or renders under a name built on the spot
            if isinstance(node, ast.Call) and node.args:
                called = getattr(node.func, "attr", getattr(node.func, "id", ""))
                first = node.args[0]
                built = isinstance(first, ast.JoinedStr) or (
                    isinstance(first, ast.Constant) and first.value != EVERY_EVENT
                )
                if called in ("publish", "renders") and built:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {called}(...)")
    assert offenders == [], "use the app's EventNames attributes:\n" + "\n".join(offenders)
