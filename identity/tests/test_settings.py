"""Identity settings from the environment: SSO on only when complete, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.tests.test_settings import load_settings, run

SSO = {
    "SIGNALBOX_OIDC_ISSUER": "https://login.example.com/realms/eng/",
    "SIGNALBOX_OIDC_CLIENT_ID": "signalbox",
    "SIGNALBOX_OIDC_CLIENT_SECRET": "s3cret",
}


def test_sso_is_off_until_an_issuer_is_set(tmp_path: Path) -> None:
    off = load_settings(tmp_path, "s.SIGNALBOX_OIDC_ENABLED, s.AUTHENTICATION_BACKENDS[-1]")
    on = load_settings(tmp_path, "s.SIGNALBOX_OIDC_ISSUER, s.AUTHENTICATION_BACKENDS[-1]", **SSO)
    assert off.stdout.strip() == "False django.contrib.auth.backends.ModelBackend"
    assert on.stdout.strip() == "https://login.example.com/realms/eng identity.sso.Backend"


def test_the_client_secret_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    env = {**SSO, "SIGNALBOX_OIDC_CLIENT_SECRET_FILE": str(secret)}
    del env["SIGNALBOX_OIDC_CLIENT_SECRET"]
    assert load_settings(tmp_path, "s.OIDC_RP_CLIENT_SECRET", **env).stdout.strip() == "from-a-file"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIGNALBOX_OIDC_CLIENT_ID": ""}, "set SIGNALBOX_OIDC_CLIENT_ID and"),
        ({"SIGNALBOX_OIDC_SCOPES": "email profile"}, "must include openid"),
        ({"SIGNALBOX_LOCAL_LOGIN": "nobody"}, "use everyone or admins"),
        ({"SIGNALBOX_LOGIN_LOCKOUT_BY": "username+host"}, "SIGNALBOX_LOGIN_LOCKOUT_BY lists"),
        ({"SIGNALBOX_LOGIN_FAILURE_LIMIT": "0"}, "LOGIN_FAILURE_LIMIT=0 must be at least 1"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_it(tmp_path: Path, env: dict[str, str],
                                               message: str) -> None:  # fmt: skip
    answer = load_settings(tmp_path, **{**SSO, **env})
    assert answer.returncode != 0
    assert message in answer.stderr


def test_local_login_for_admins_only_needs_sso(tmp_path: Path) -> None:
    answer = load_settings(tmp_path, SIGNALBOX_LOCAL_LOGIN="admins")
    assert "leaves only platform admins a way in" in answer.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIGNALBOX_OIDC_GROUP_ROLES": "oncall=payments:member"}, "role 'member' is not one of"),
        ({"SIGNALBOX_API_TOKEN_RATE": "lots"}, "SIGNALBOX_API_TOKEN_RATE='lots'"),
        ({"SIGNALBOX_API_USER_RATE": "5/week"}, "SIGNALBOX_API_USER_RATE='5/week'"),
    ],
)
def test_a_bad_mapping_or_rate_stops_start_up(tmp_path: Path, env: dict[str, str],
                                              message: str) -> None:  # fmt: skip
    answer = run(["-c", "import django; django.setup()"], tmp_path, **env)
    assert answer.returncode != 0
    assert message in answer.stderr
