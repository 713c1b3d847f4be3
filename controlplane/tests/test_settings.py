"""Settings from the environment: loud on bad values, strict in production.

Settings are read once per process, so each case runs in a fresh Python process.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings

BASE_DIR = Path(django_settings.BASE_DIR)
# Only what the machine needs; every Signalbox variable is set by the test itself.
KEEP = ("PATH", "HOME", "LANG", "DATABASE_URL", "REDIS_URL")


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {name: os.environ[name] for name in KEEP if name in os.environ}
    environment.update(
        DJANGO_SETTINGS_MODULE="controlplane.settings", SIGNALBOX_VAR_DIR=str(tmp_path), **env
    )
    return subprocess.run(
        [sys.executable, *args], cwd=BASE_DIR, env=environment, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def load_settings(
    tmp_path: Path, expression: str = "''", **env: str
) -> subprocess.CompletedProcess[str]:
    """Import the settings and print `expression` (evaluated with `s` the settings module)."""
    code = f"import controlplane.settings as s; print({expression})"
    return run(["-c", code], tmp_path, **env)


def production(**extra: str) -> dict[str, str]:
    return {
        "SIGNALBOX_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "SIGNALBOX_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "signalbox.example.com",
        **extra,
    }


def test_deploy_security_checks_are_clean_with_production_settings(tmp_path: Path) -> None:
    result = run(
        ["manage.py", "check", "--deploy", "--tag", "security", "--fail-level", "WARNING"],
        tmp_path, **production(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_every_deploy_check_passes_with_production_settings(tmp_path: Path) -> None:
    # All apps' checks (the API schema's among them): none may be an error.
    result = run(["manage.py", "check", "--deploy"], tmp_path, **production())
    assert result.returncode == 0, result.stderr


def test_a_bad_debug_value_is_refused_by_name(tmp_path: Path) -> None:
    result = load_settings(tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert (
        "ImproperlyConfigured: DEBUG='maybe' is not a boolean; use true or false" in result.stderr
    )


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    env = production()
    del env["SECRET_KEY"]
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY (or SECRET_KEY_FILE) must be set" in result.stderr


def test_production_refuses_to_start_without_an_encryption_key(tmp_path: Path) -> None:
    env = production()
    del env["SIGNALBOX_ENCRYPTION_KEY"]
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert "SIGNALBOX_ENCRYPTION_KEY (or _FILE) must be set in production" in result.stderr


def test_secrets_are_read_from_files(tmp_path: Path) -> None:
    # given secrets mounted as files, as Docker and Kubernetes do
    secret_key = secrets.token_urlsafe(60)
    encryption_key = Fernet.generate_key().decode()
    (tmp_path / "secret_key").write_text(secret_key + "\n")
    (tmp_path / "encryption_key").write_text(encryption_key)
    (tmp_path / "redis_url").write_text("redis://cache.internal:6380/2\n")
    env = production(
        SECRET_KEY_FILE=str(tmp_path / "secret_key"),
        SIGNALBOX_ENCRYPTION_KEY_FILE=str(tmp_path / "encryption_key"),
        REDIS_URL_FILE=str(tmp_path / "redis_url"),
    )
    del env["SECRET_KEY"], env["SIGNALBOX_ENCRYPTION_KEY"]
    # when
    result = run(
        ["-c", "import controlplane.settings as s; print(s.SECRET_KEY); "
               "print(s.SIGNALBOX_ENCRYPTION_KEY); print(s.REDIS_URL)"],
        tmp_path, **{**env, "REDIS_URL": ""},
    )  # fmt: skip
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [secret_key, encryption_key, "redis://cache.internal:6380/2"]


def test_a_secret_given_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text(secrets.token_urlsafe(60))
    result = load_settings(tmp_path, **production(SECRET_KEY_FILE=str(tmp_path / "secret_key")))
    assert result.returncode != 0
    assert "set SECRET_KEY or SECRET_KEY_FILE, not both" in result.stderr


@pytest.mark.parametrize(
    ("url", "prefix"),
    [
        ("redis://127.0.0.1:6379/4", "signalbox:4:live"),
        ("redis://127.0.0.1:6379", "signalbox:0:live"),
    ],
)
def test_the_live_channel_names_its_redis_database(tmp_path: Path, url: str, prefix: str) -> None:
    # Redis pub/sub ignores database numbers: two installs on one Redis must not cross-talk.
    result = load_settings(
        tmp_path, "s.CHANNEL_LAYERS['default']['CONFIG']['prefix']", REDIS_URL=url
    )
    assert result.stdout.strip() == prefix, result.stderr
