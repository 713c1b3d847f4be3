"""Catalog pages: an instance. Teams' and services' pages are the dashboard's."""

from __future__ import annotations

from django.urls import path

from catalog import views

app_name = "catalog"
urlpatterns = [
    path("instances/<int:pk>/", views.instance_detail, name="instance"),
]
