"""The chart as `helm template` renders it, and docker-compose.yml as compose reads it, for
the chart tests. Helm is the real binary `make venv` installs (scripts/install_helm.py)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "signalbox"
COMPOSE_VALUES = CHART / "ci" / "compose-values.yaml"
HELM = Path(sys.executable).with_name("helm")
RELEASE = "signalbox"
# The compose services the chart runs; postgres and redis are yours to provide, and the
# `demo` profile (fleet, vendor, seed) is not for a cluster.
COMPOSE_PROCESSES = ("migrate", "web", "worker", "beat")
_HELM_HOME = Path(tempfile.gettempdir()) / f"signalbox-chart-tests-{os.getuid()}"


class RenderError(Exception):
    """`helm template` refused the values; the message is Helm's."""


def helm_binary() -> Path:
    if not HELM.exists():
        raise AssertionError(
            f"{HELM} is missing: run `make helm` (or `make venv`), which installs the pinned "
            "Helm the chart tests render with"
        )
    return HELM


def render(*values_files: Path, **overrides: str) -> list[dict[str, Any]]:
    """Every object `helm template` renders with these values files and --set overrides."""
    command = [str(helm_binary()), "template", RELEASE, str(CHART), "--namespace", "signalbox"]
    for path in values_files:
        command += ["--values", str(path)]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    env = {**os.environ, **{f"HELM_{kind}_HOME": str(_HELM_HOME / kind.lower())
                            for kind in ("CACHE", "CONFIG", "DATA")}}  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        raise RenderError(f"{shlex.join(command)}: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def component(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of `kind` whose app.kubernetes.io/component label is `name`."""
    found = [
        obj for obj in by_kind(objects, kind)
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == name
    ]  # fmt: skip
    assert len(found) == 1, f"expected one {kind} for {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(workload)["containers"]
    return dict(only)


def compose() -> dict[str, Any]:
    """docker-compose.yml with its anchors merged and ${VAR:-default} read as the default,
    as `docker compose` does when VAR is unset."""
    text = (ROOT / "docker-compose.yml").read_text()
    text = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", text)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def dockerfile_cmd() -> list[str]:
    """The image's CMD (exec form), which compose's web runs."""
    import json

    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            command: list[str] = json.loads(line[4:])
            return command
    raise AssertionError("the Dockerfile has no CMD line")
