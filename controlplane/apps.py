"""The control plane's app config: registers the dashboard's live renderers in every process."""

from __future__ import annotations

from django.apps import AppConfig


class ControlplaneConfig(AppConfig):
    name = "controlplane"

    def ready(self) -> None:
        # `controlplane.live` discovers `<app>.live` modules, and this app's is the shell's
        # own; the dashboard's renderers (home, team and service sections) register here,
        # in web processes and workers alike.
        from controlplane.dashboard import live  # noqa: F401
