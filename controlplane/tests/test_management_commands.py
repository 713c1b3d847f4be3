"""Every management command of our apps starts the way an operator runs it: `--help` works."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import get_commands

# The floors of docs/architecture.md; Django's and third-party apps' commands are theirs.
OUR_APPS = frozenset(
    {"controlplane", "catalog", "health", "circuits", "deployments", "alerts", "dashboard"}
)


def our_commands() -> list[str]:
    return sorted(name for name, app in get_commands().items() if app in OUR_APPS)


def test_the_commands_of_our_apps_are_found() -> None:
    # given the installed apps
    # when their commands are listed
    commands = our_commands()
    # then the documented ones are among them, so the test below checks something
    assert {"demo_canary", "seed_demo", "seed_deployments", "issue_token"} <= set(commands)


@pytest.mark.parametrize("command", our_commands())
def test_each_command_prints_its_usage(command: str) -> None:
    # given a command of ours, run as a new process, as `manage.py` runs it
    # when it is asked for its help
    done = subprocess.run(
        [sys.executable, "manage.py", command, "--help"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # then its parser builds (no option clashes with Django's own) and it explains itself
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: manage.py {command} "), done.stdout
