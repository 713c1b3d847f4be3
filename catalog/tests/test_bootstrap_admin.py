"""`manage.py bootstrap_admin`: the first admin from the environment, once."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def run() -> str:
    out = StringIO()
    call_command("bootstrap_admin", stdout=out)
    return out.getvalue()


def test_creates_the_first_admin_from_a_password_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "admin_password"
    secret.write_text("correct-horse-battery-staple\n")
    monkeypatch.setenv("SIGNALBOX_ADMIN_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("SIGNALBOX_ADMIN_EMAIL", "ops@example.com")
    assert "Created the admin 'admin'" in run()
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.email == "ops@example.com"
    assert admin.check_password("correct-horse-battery-staple")  # the file's newline dropped


def test_changes_nothing_once_an_admin_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    get_user_model().objects.create_superuser("root", password="changed-in-the-ui-42")
    monkeypatch.setenv("SIGNALBOX_ADMIN_PASSWORD", "correct-horse-battery-staple")
    assert "An admin exists already (root); nothing changed." in run()
    assert get_user_model().objects.count() == 1
    assert get_user_model().objects.get().check_password("changed-in-the-ui-42")


def test_says_what_to_set_when_no_password_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNALBOX_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("SIGNALBOX_ADMIN_PASSWORD_FILE", raising=False)
    assert "SIGNALBOX_ADMIN_PASSWORD_FILE" in run()
    assert not get_user_model().objects.exists()


def test_refuses_a_weak_password_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALBOX_ADMIN_PASSWORD", "admin")
    with pytest.raises(CommandError, match=r"SIGNALBOX_ADMIN_PASSWORD: .*too short"):
        run()
    assert not get_user_model().objects.exists()


def test_refuses_a_password_file_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNALBOX_ADMIN_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match=r"SIGNALBOX_ADMIN_PASSWORD_FILE=.*cannot be read"):
        run()


def test_refuses_to_promote_an_existing_user(monkeypatch: pytest.MonkeyPatch) -> None:
    get_user_model().objects.create_user("admin", password="pw-of-someone-else")
    monkeypatch.setenv("SIGNALBOX_ADMIN_PASSWORD", "correct-horse-battery-staple")
    with pytest.raises(CommandError, match="exists but is not an admin"):
        run()
    assert not get_user_model().objects.get().is_superuser
