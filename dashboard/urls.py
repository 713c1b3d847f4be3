"""The dashboard's pages. Team and service pages keep their /catalog/ paths, so links
written before the dashboard became its own app still lead there."""

from __future__ import annotations

from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
    path("search", views.search, name="search"),
    path("events/", views.events, name="events"),
    path("catalog/teams/<slug:slug>/", views.team_page, name="team"),
    path("catalog/services/<slug:slug>/", views.service_page, name="service"),
    path("catalog/services/<slug:slug>/deploy", views.deploy, name="service-deploy"),
    path("dependencies/", views.external_list, name="external-dependencies"),
    path("dependencies/<slug:slug>/", views.external_page, name="external-dependency"),
]
