"""Circuit dashboard pages, under /circuits/."""

from __future__ import annotations

from django.urls import path

from circuits import views

app_name = "circuits"
urlpatterns = [
    path("", views.grid, name="grid"),
    path("<int:pk>/", views.circuit_detail, name="circuit"),
    path("<int:pk>/override", views.set_override, name="set-override"),
    path("overrides/<int:pk>/clear", views.clear_override, name="clear-override"),
]
