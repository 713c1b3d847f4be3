"""The one publishing base viewset every writable API resource inherits.

Kept apart from `controlplane.api` (pagination, the error shape), which DRF's settings
import while `rest_framework.viewsets` is itself being imported."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import Model
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer

from controlplane import changes
from controlplane.events import ResourceEvents


def actor_of(request: Request) -> Any:
    """Who made an API request, as `publish()` records it: the token, else the person."""
    return request.auth if isinstance(request.auth, Model) else request.user


class PublishingViewSet(viewsets.ModelViewSet[Any]):
    """The one write path of the API: PATCH (no PUT), and every create, change and delete
    saved through `controlplane.changes`, so it is one audited event in the change's own
    transaction, exactly as the same change made from a page. Deleting something still in
    use and racing a unique constraint answer 409.

    Subclasses name their `events` and their permission rule (the catalog's `ScopeRule`,
    through `catalog.api.views.ScopedViewSet`)."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    events: ClassVar[ResourceEvents]

    def conflict_message(self, serializer: BaseSerializer[Any]) -> str:
        return "it already exists"

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        changes.create(
            serializer,
            actor=actor_of(self.request),
            events=self.events,
            conflict=self.conflict_message(serializer),
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        changes.update(
            serializer,
            actor=actor_of(self.request),
            events=self.events,
            conflict=self.conflict_message(serializer),
        )

    def perform_destroy(self, instance: Model) -> None:
        changes.delete(instance, actor=actor_of(self.request), events=self.events)
