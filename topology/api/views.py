"""The dependency map through the API: the graph, and who is hurt when a node is down."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.choices import Scope
from catalog.models import Environment, Team
from catalog.permissions import ScopeRule
from controlplane.api import refuse_unknown_parameters
from topology.api import serializers as s
from topology.graph import Graph, blast_radius, build_graph, build_scoped_graph, node_id
from topology.models import NodeKind
from topology.scope import MAX_DEPTH, ScopeError, pick_scope

READ_ONLY = {"GET": Scope.READ}
ENVIRONMENT = OpenApiParameter(
    "environment", str, description="an environment's slug; without it, every environment"
)
TEAM = OpenApiParameter("team", str, description="only this team's services and their neighbours")
SCOPE = [
    OpenApiParameter(
        "service", str, description="a service's slug: it and its neighbourhood (see depth)"
    ),
    OpenApiParameter(
        "depth", int, description=f"with service: hops around it, 1 to {MAX_DEPTH} (default 1)"
    ),
    OpenApiParameter(
        "q", str, description="services whose slug or name contains this, and their neighbours"
    ),
]
# The blast-radius parameters naming its origin, and the kind of node each names.
ORIGINS = {"service": NodeKind.SERVICE, "external": NodeKind.EXTERNAL, "virtual": NodeKind.VIRTUAL}


def _by_slug(request: Request, name: str, model: Any) -> Any:
    """The catalog object a query parameter names by slug, None if absent, 400 if unknown."""
    slug = request.query_params.get(name, "")
    if not slug:
        return None
    found = model.objects.filter(slug=slug).first()
    if found is None:
        raise exceptions.ValidationError({name: [f"no {name} {slug!r}"]})
    return found


def _graph(request: Request) -> Graph:
    """The whole graph, or the scope the parameters ask for (team, service and depth, q),
    built in SQL around it; unlike the page, no scope means the whole graph."""
    environment = _by_slug(request, "environment", Environment)
    team = _by_slug(request, "team", Team)
    params = request.query_params
    if team is None and not params.get("service") and not params.get("q", "").strip():
        if params.get("depth"):
            raise exceptions.ValidationError({"depth": ["give it with service"]})
        return build_graph(environment)
    try:
        scope = pick_scope(
            environment=environment,
            total_services=0,
            team=team.slug if team is not None else "",
            service=params.get("service", ""),
            depth=params.get("depth", ""),
            search=params.get("q", ""),
        )
    except ScopeError as error:
        raise exceptions.ValidationError({error.field: [error.reason]}) from error
    return build_scoped_graph(environment, scope.seeds)


class GraphView(APIView):
    """Services, external dependencies and trace-only (virtual) nodes, with their health,
    and the edges between them: each with its sources (declared, circuit, trace), its
    circuits' state and the last 15 minutes of traced calls."""

    permission_classes = [ScopeRule]
    scopes = READ_ONLY
    query_parameters = ("environment", "team", "service", "depth", "q")

    @extend_schema(parameters=[ENVIRONMENT, TEAM, *SCOPE], responses={200: s.GraphSerializer})
    def get(self, request: Request) -> Response:
        refuse_unknown_parameters(request, self)
        graph = _graph(request)
        body = {
            "environment": graph.environment.slug if graph.environment else None,
            "nodes": list(graph.nodes.values()),
            "edges": [graph.edges[pair] for pair in sorted(graph.edges)],
        }
        return Response(s.GraphSerializer(body).data)


class BlastRadiusView(APIView):
    """Who is hurt when a node is down: every node that depends on it, directly or through
    others, with the shortest path and its hop count, tier 1 named. Give exactly one of
    `service`, `external` (slugs) or `virtual` (a name seen in traces)."""

    permission_classes = [ScopeRule]
    scopes = READ_ONLY
    query_parameters = ("service", "external", "virtual", "environment")

    @extend_schema(
        parameters=[
            OpenApiParameter("service", str, description="a service's slug"),
            OpenApiParameter("external", str, description="an external dependency's slug"),
            OpenApiParameter("virtual", str, description="a node only traces name"),
            ENVIRONMENT,
        ],
        responses={200: s.BlastRadiusSerializer},
    )
    def get(self, request: Request) -> Response:
        refuse_unknown_parameters(request, self)
        given = [name for name in ORIGINS if request.query_params.get(name)]
        if len(given) != 1:
            reason = "give exactly one of service, external or virtual"
            raise exceptions.ValidationError({(given or ["service"])[-1]: [reason]})
        name = given[0]
        graph = _graph(request)
        origin = node_id(ORIGINS[name], request.query_params[name])
        if origin not in graph.nodes:
            what = "name seen in traces" if name == "virtual" else name
            raise exceptions.ValidationError({name: [f"no {what} {request.query_params[name]!r}"]})
        hurt = blast_radius(graph, origin)
        body = {
            "environment": graph.environment.slug if graph.environment else None,
            "origin": graph.nodes[origin],
            "hurt": hurt,
            "tier_1": [h.node.id for h in hurt if h.node.is_tier_1],
        }
        return Response(s.BlastRadiusSerializer(body).data)
