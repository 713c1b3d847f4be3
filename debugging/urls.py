"""Debugging pages under /debugging/."""

from __future__ import annotations

from django.urls import URLPattern

app_name = "debugging"
urlpatterns: list[URLPattern] = []
