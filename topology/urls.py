"""Topology pages under /topology/."""

from __future__ import annotations

from django.urls import URLPattern

app_name = "topology"
urlpatterns: list[URLPattern] = []
