"""Health dashboard pages under /health/."""

from __future__ import annotations

from django.urls import path

from health import views

app_name = "health"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("services/<slug:slug>/", views.service_page, name="service"),
    path("services/<slug:slug>/check/", views.check_edit, name="check"),
    path("services/<slug:slug>/maintenance/", views.maintenance_create, name="maintenance-create"),
    path("maintenance/<int:pk>/end/", views.maintenance_end, name="maintenance-end"),
    path("instances/<int:pk>/", views.instance_page, name="instance"),
    path("instances/<int:pk>/check/", views.instance_check_edit, name="instance-check"),
]
