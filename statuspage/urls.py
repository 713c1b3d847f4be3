"""Public URLs: /status/<slug>/ (the page and its Statuspage v2 JSON), /badges/<token>.svg."""

from __future__ import annotations

from django.urls import path, re_path

from statuspage import views

app_name = "statuspage"
urlpatterns = [
    path("status/<slug:slug>/", views.page_view, name="page"),
    path("status/<slug:slug>/api/v2/summary.json", views.summary_json, name="summary"),
    path("status/<slug:slug>/api/v2/status.json", views.status_json, name="status"),
    re_path(r"^badges/(?P<token>[A-Za-z0-9_-]{20,64})\.svg$", views.badge_svg, name="badge"),
]
