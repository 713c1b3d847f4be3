"""The dependency map pages: the map of an environment, a node's blast radius on it, and
the way from a trace id to the service's trace UI."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render

from catalog.models import Environment, Service, Team
from topology.choices import EdgeLevel, EdgeSource
from topology.graph import (
    TRACE_WINDOW_MINUTES,
    Graph,
    blast_radius,
    build_graph,
    build_scoped_graph,
    node_id,
)
from topology.layout import NODE_HEIGHT, NODE_WIDTH, lay_out
from topology.models import NodeKind
from topology.scope import DEFAULT_DEPTH, FULL_MAP_SERVICES, MAX_DEPTH, ScopeError, pick_scope

# Nodes the map draws at most: the layout's cost grows faster than its node count (its
# layers are walked once per layer), a box with its edges is ~1 KB of page, and past ~100
# boxes the picture is no longer read (150 drawn: 179 KB at 10,000 services).
MAX_DRAWN_NODES = 100

HEALTH_LEGEND = (
    ("healthy", "Healthy"),
    ("degraded", "Degraded"),
    ("down", "Down"),
    ("unknown", "No verdict yet"),
)


def _environment(request: HttpRequest, environments: list[Environment]) -> Environment | None:
    """The asked-for environment; every one for `?environment=`; by default production's."""
    if "environment" in request.GET:
        slug = request.GET["environment"]
        if not slug:
            return None
        for environment in environments:
            if environment.slug == slug:
                return environment
        raise Http404(f"no environment {slug!r}")
    production = [e for e in environments if e.is_production]
    candidates = production or environments
    return candidates[0] if candidates else None


def _map_context(graph: Graph, environments: list[Environment]) -> dict[str, Any]:
    env_slug = graph.environment.slug if graph.environment else ""
    return {
        "graph": graph,
        "layout": lay_out(graph),
        "edges": [graph.edges[pair] for pair in sorted(graph.edges)],
        "environment": graph.environment,
        "env_query": f"?env={env_slug}" if env_slug else "",
        "blast_query": f"?environment={env_slug}",
        "environments": environments,
        "health_legend": HEALTH_LEGEND,
        "edge_legend": EdgeLevel.choices,
        "source_labels": dict(EdgeSource.choices),
        "window_minutes": TRACE_WINDOW_MINUTES,
        "node_width": NODE_WIDTH,
        "node_height": NODE_HEIGHT,
    }


@login_required
def dependency_map(request: HttpRequest) -> HttpResponse:
    """Every service, external dependency and traced peer, and who calls whom; past
    FULL_MAP_SERVICES services, or when asked, a scope of them (topology.scope)."""
    environments = list(Environment.objects.all())
    environment = _environment(request, environments)
    total = Service.objects.count()
    try:
        scope = pick_scope(
            environment=environment,
            total_services=total,
            team=request.GET.get("team", ""),
            service=request.GET.get("service", ""),
            depth=request.GET.get("depth", ""),
            search=request.GET.get("q", ""),
            user_id=request.user.pk,
        )
    except ScopeError as error:
        if error.field == "team":
            raise Http404(str(error)) from error
        return HttpResponseBadRequest(str(error))
    if scope.whole:
        graph = build_graph(environment)
    else:
        graph = build_scoped_graph(environment, scope.seeds)
    scoped_nodes = len(graph.nodes)
    own = {node_id(NodeKind.SERVICE, s.slug) for s in scope.seeds}
    graph = graph.capped(MAX_DRAWN_NODES, own)
    shown = sum(1 for node in graph.nodes.values() if node.kind == NodeKind.SERVICE)
    context = _map_context(graph, environments)
    context.update(
        teams=Team.objects.only("slug", "name"),
        team=request.GET.get("team", ""),
        service=request.GET.get("service", ""),
        depth=request.GET.get("depth", "") or DEFAULT_DEPTH,
        depths=range(1, MAX_DEPTH + 1),
        q=request.GET.get("q", ""),
        scope=scope,
        scope_controls=total > FULL_MAP_SERVICES or not scope.whole,
        total_services=total,
        full_map_services=FULL_MAP_SERVICES,
        shown_services=shown,
        scoped_nodes=scoped_nodes,
        drawn_cap=MAX_DRAWN_NODES if scoped_nodes > MAX_DRAWN_NODES else 0,
        hurt={},
        origin="",
    )
    return render(request, "topology/map.html", context)


@login_required
def blast(request: HttpRequest, kind: str, name: str) -> HttpResponse:
    """If this node is down, who is hurt: the list, and the map with them highlighted."""
    if kind not in NodeKind.values:
        raise Http404(f"no kind of node {kind!r}")
    environments = list(Environment.objects.all())
    graph = build_graph(_environment(request, environments))
    origin = node_id(kind, name)
    if origin not in graph.nodes:
        raise Http404(f"no {kind} {name!r} on the map")
    hurt = blast_radius(graph, origin)
    context = _map_context(graph, environments)
    context.update(
        origin=origin,
        origin_node=graph.nodes[origin],
        hurt_list=hurt,
        hurt={h.node.id: h for h in hurt},
        tier_1=[h for h in hurt if h.node.is_tier_1],
        path_names={key: node.slug for key, node in graph.nodes.items()},
    )
    return render(request, "topology/blast.html", context)


# W3C trace ids are 32 hex digits; B3 also allows 16.
TRACE_ID = re.compile(r"^(?:[0-9a-f]{16}|[0-9a-f]{32})$")


@login_required
def trace(request: HttpRequest, slug: str) -> HttpResponse:
    """GET ?trace_id=: to that trace in the service's trace UI (its trace link template)."""
    service = get_object_or_404(Service, slug=slug)
    trace_id = request.GET.get("trace_id", "").strip().lower()
    if not service.trace_link_template:
        raise Http404(f"{service.slug} has no trace link template (catalog: trace_link_template)")
    if not TRACE_ID.match(trace_id) or set(trace_id) == {"0"}:
        return HttpResponseBadRequest(
            "trace_id: give the trace's id, 32 hexadecimal digits (16 for 64-bit B3 ids)"
        )
    return redirect(service.trace_link(trace_id, environment=request.GET.get("environment", "")))
