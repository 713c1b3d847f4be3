"""What every app's API builds on from the catalog: the permission-bound publishing
viewset, the scope maps, lookups, and finding the owning team named in a request body."""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework.request import Request

from catalog.choices import Scope
from catalog.models import Service, Team
from catalog.permissions import ADMIN, ScopeRule
from controlplane.viewsets import PublishingViewSet

READ_WRITE = {"GET": Scope.READ, "POST": Scope.WRITE, "PATCH": Scope.WRITE, "DELETE": Scope.WRITE}
ADMIN_WRITES = {"GET": Scope.READ, "POST": ADMIN, "PATCH": ADMIN, "DELETE": ADMIN}
SLUG_LOOKUP = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
ID_LOOKUP = r"[0-9]+"


class ScopedViewSet(PublishingViewSet):
    """The spine's publishing viewset under the catalog's permission rule: reads for any
    signed-in caller, writes checked on the owning team (`scopes`, `team_for_create`)."""

    permission_classes = [ScopeRule]
    scopes: Mapping[str, str] = READ_WRITE


def body_value(request: Request, field: str) -> str | None:
    """A string field of the request body, or None (the serializer then explains the 400)."""
    data = request.data
    value = data.get(field) if isinstance(data, Mapping) else None
    return value if isinstance(value, str) else None


def team_in_body(request: Request) -> tuple[Team | None, Service | None]:
    """The team a create names by slug (`team`), for ScopeRule's check."""
    slug = body_value(request, "team")
    return (Team.objects.filter(slug=slug).first() if slug else None), None


def service_in_body(request: Request) -> tuple[Team | None, Service | None]:
    """The service a create names by slug (`service`) and its team, for ScopeRule's check."""
    slug = body_value(request, "service")
    service = Service.objects.select_related("team").filter(slug=slug).first() if slug else None
    return (service.team if service else None), service
