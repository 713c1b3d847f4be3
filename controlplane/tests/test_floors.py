"""The floors are checked: `lint-imports` keeps our contracts, and breaks on a planted
cross-floor import with the contract's name and guidance."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.slow


def copy_of_the_project(into: Path) -> Path:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    for package in config["root_packages"]:
        source = ROOT / package if (ROOT / package).is_dir() else ROOT / "client" / package
        shutil.copytree(source, into / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", into / "pyproject.toml")
    return into


def lint(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=project,
        env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("planted", "broken"),
    [
        ("catalog/planted.py", "Floors: dashboard | statuspage > alerts"),
        ("health/planted.py", "Floors: dashboard | statuspage > alerts"),
    ],
)
def test_a_cross_floor_import_fails_with_its_reason(
    tmp_path: Path, planted: str, broken: str
) -> None:
    # given the project with one module importing a floor above its own
    project = copy_of_the_project(tmp_path)
    (project / planted).write_text("from deployments import models  # noqa: F401\n")
    # when the floors are checked
    result = lint(project)
    # then the check fails, naming the contract, the import and what to do instead
    assert result.returncode == 1, result.stdout
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout
    assert f"{planted.removesuffix('.py').replace('/', '.')} -> deployments.models" in (
        result.stdout
    )
    assert "Move the code to the floor that owns it" in result.stdout


def test_importing_the_dashboard_or_alerts_from_an_app_is_refused(tmp_path: Path) -> None:
    project = copy_of_the_project(tmp_path)
    (project / "circuits" / "planted.py").write_text("import alerts.models  # noqa: F401\n")
    (project / "health" / "planted.py").write_text("import dashboard.views  # noqa: F401\n")
    result = lint(project)
    assert result.returncode == 1
    assert "Alerts is reached only through the spine's hand-off" in result.stdout
    assert "The dashboard is the top floor" in result.stdout


def test_the_fleet_may_not_use_django(tmp_path: Path) -> None:
    project = copy_of_the_project(tmp_path)
    (project / "fleet" / "planted.py").write_text("import django.conf  # noqa: F401\n")
    result = lint(project)
    assert result.returncode == 1
    assert "import no Django and no app BROKEN" in result.stdout
