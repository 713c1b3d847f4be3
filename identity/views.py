"""The login page (local form and the SSO button) and password reset by email."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import reverse_lazy

from identity.forms import LoginForm


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["sso_enabled"] = settings.SIGNALBOX_OIDC_ENABLED
        context["sso_label"] = settings.SIGNALBOX_OIDC_BUTTON_LABEL
        return context


class PasswordResetView(auth_views.PasswordResetView):
    """Mails a one-time link to accounts with a local password (SSO accounts have none)."""

    template_name = "registration/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        return {**context, "sso_enabled": settings.SIGNALBOX_OIDC_ENABLED}

    def form_valid(self, form: Any) -> HttpResponse:
        # Links use the configured address, not the request's Host header.
        self.extra_email_context = {"base_url": settings.SIGNALBOX_BASE_URL.rstrip("/")}
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    success_url = reverse_lazy("password_reset_complete")
