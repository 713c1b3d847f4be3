"""Alerts dashboard pages under /alerts/."""

from __future__ import annotations

from django.urls import path

from alerts import views

app_name = "alerts"
urlpatterns = [
    path("", views.incidents, name="incidents"),
    path("incidents/<int:pk>/", views.incident_detail, name="incident"),
    path("incidents/<int:pk>/acknowledge", views.incident_acknowledge, name="acknowledge"),
    path("incidents/<int:pk>/resolve", views.incident_resolve, name="resolve"),
    path("silences/", views.silences, name="silences"),
    path("silences/<int:pk>/expire", views.silence_expire, name="silence_expire"),
    path("teams/<slug:slug>/", views.team_settings, name="team_settings"),
]
