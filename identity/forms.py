"""The local login form: a password sign-in, for everyone or for break-glass admins only."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from identity.choices import LocalLogin


class LoginForm(AuthenticationForm):
    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if settings.SIGNALBOX_LOCAL_LOGIN == LocalLogin.ADMINS and not user.is_superuser:
            raise ValidationError(
                "Local sign-in is kept for platform admins (break-glass); sign in with "
                f"{settings.SIGNALBOX_OIDC_BUTTON_LABEL.removeprefix('Sign in with ')} instead.",
                code="local_login_admins_only",
            )
