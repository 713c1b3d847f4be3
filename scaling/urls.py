"""Scaling pages under /scaling/."""

from __future__ import annotations

from django.urls import path

from scaling import views

app_name = "scaling"
urlpatterns = [
    path("", views.group_list, name="groups"),
    path("groups/<int:pk>/", views.group_detail, name="group"),
    path("groups/<int:pk>/actions", views.group_actions, name="group-actions"),
    path("groups/<int:pk>/desired", views.set_desired, name="group-desired"),
    path("groups/<int:pk>/pause", views.pause, name="group-pause"),
    path("groups/<int:pk>/resume", views.resume, name="group-resume"),
    path("groups/<int:pk>/restart", views.restart, name="group-restart"),
]
