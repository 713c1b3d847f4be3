"""Debugging pages under /debugging/."""

from __future__ import annotations

from django.urls import path

from debugging import views

app_name = "debugging"
urlpatterns = [
    path("config/<slug:service>/<slug:environment>", views.config_page, name="config"),
    path(
        "config/<slug:service>/<slug:environment>/revert/<int:number>", views.revert, name="revert"
    ),
    path("delivery/<slug:service>", views.set_delivery, name="set-delivery"),
    path("windows/open/<slug:service>", views.open_window, name="open-window"),
    path("windows/<int:pk>/close", views.close_window, name="close-window"),
]
