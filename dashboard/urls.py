"""The dashboard's pages. Team and service pages keep their /catalog/ paths, so links
written before the dashboard became its own app still lead there."""

from __future__ import annotations

from django.urls import path

from dashboard import heartbeats, team_views, views

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
    path("search", views.search, name="search"),
    path("events/", views.events, name="events"),
    path("catalog/teams/<slug:slug>/", views.team_page, name="team"),
    path("catalog/teams/<slug:slug>/invite", team_views.invite, name="team-invite"),
    path(
        "catalog/teams/<slug:slug>/invitations/<int:pk>/cancel",
        team_views.cancel_invitation,
        name="team-invitation-cancel",
    ),
    path(
        "catalog/teams/<slug:slug>/members/<int:pk>/role",
        team_views.member_role,
        name="team-member-role",
    ),
    path(
        "catalog/teams/<slug:slug>/members/<int:pk>/remove",
        team_views.member_remove,
        name="team-member-remove",
    ),
    path("catalog/teams/<slug:slug>/tokens/new", team_views.token_create, name="team-token-create"),
    path(
        "catalog/teams/<slug:slug>/tokens/<int:pk>/revoke",
        team_views.token_revoke,
        name="team-token-revoke",
    ),
    path(
        "catalog/teams/<slug:slug>/channels/new",
        team_views.channel_create,
        name="team-channel-create",
    ),
    path(
        "catalog/teams/<slug:slug>/channels/<int:pk>/edit",
        team_views.channel_edit,
        name="team-channel-edit",
    ),
    path(
        "catalog/teams/<slug:slug>/channels/<int:pk>/test",
        team_views.channel_test,
        name="team-channel-test",
    ),
    path(
        "catalog/teams/<slug:slug>/channels/<int:pk>/delete",
        team_views.channel_delete,
        name="team-channel-delete",
    ),
    path("catalog/teams/<slug:slug>/routes/new", team_views.route_create, name="team-route-create"),
    path(
        "catalog/teams/<slug:slug>/routes/<int:pk>/edit",
        team_views.route_edit,
        name="team-route-edit",
    ),
    path(
        "catalog/teams/<slug:slug>/routes/<int:pk>/delete",
        team_views.route_delete,
        name="team-route-delete",
    ),
    path("invitations/<str:token>/", team_views.accept_invitation, name="invitation"),
    path("catalog/services/<slug:slug>/", views.service_page, name="service"),
    path("catalog/services/<slug:slug>/markers", views.service_markers, name="service-markers"),
    path("catalog/services/<slug:slug>/deploy", views.deploy, name="service-deploy"),
    path("catalog/services/<slug:slug>/heartbeats/", heartbeats.heartbeat_list, name="heartbeats"),
    path(
        "catalog/services/<slug:slug>/heartbeats/new",
        heartbeats.heartbeat_create,
        name="heartbeat-create",
    ),
    path(
        "catalog/services/<slug:slug>/heartbeats/<int:pk>/",
        heartbeats.heartbeat_page,
        name="heartbeat",
    ),
    path(
        "catalog/services/<slug:slug>/heartbeats/<int:pk>/edit",
        heartbeats.heartbeat_edit,
        name="heartbeat-edit",
    ),
    path(
        "catalog/services/<slug:slug>/heartbeats/<int:pk>/pause",
        heartbeats.heartbeat_pause,
        name="heartbeat-pause",
    ),
    path(
        "catalog/services/<slug:slug>/heartbeats/<int:pk>/resume",
        heartbeats.heartbeat_resume,
        name="heartbeat-resume",
    ),
    path(
        "catalog/services/<slug:slug>/heartbeats/<int:pk>/delete",
        heartbeats.heartbeat_delete,
        name="heartbeat-delete",
    ),
    path("dependencies/", views.external_list, name="external-dependencies"),
    path("dependencies/<slug:slug>/", views.external_page, name="external-dependency"),
]
