"""The dependency map's graph, built in a constant number of queries, and its blast radius.

Nodes are the catalog's services (with team, tier and health) and external dependencies,
plus virtual nodes that only traces name (a database, a peer.service outside the catalog).
An edge is "client calls server", merged from every source that knows of it: declared in
the catalog, guarded by a circuit, seen in traces (topology.models.EdgeMinute, last 15
minutes). Health checks probe a service's own instances only, so probes give a node its
colour, never an edge.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from catalog.choices import Tier
from catalog.models import Environment, ExternalDependency, Service
from circuits.choices import SEVERITY, AggregateState
from circuits.models import Circuit
from circuits.services import current_state
from health.choices import ExternalState, ServiceStatus
from health.models import ServiceHealth
from health.services import service_healths
from topology.choices import ERRORS_AT_PERCENT, FAILING_AT_PERCENT, EdgeLevel, EdgeSource
from topology.models import LATENCY_BOUNDS_MS, EdgeMinute, NodeKind

TRACE_WINDOW_MINUTES = 15
# Across environments a node shows its worst health; no verdict ranks above a good one.
HEALTH_RANK: dict[str, int] = {
    ServiceStatus.HEALTHY: 0,
    ServiceStatus.UNKNOWN: 1,
    ServiceStatus.DEGRADED: 2,
    ServiceStatus.DOWN: 3,
}
# Which catalog a trace's peer name is looked up in first, by the kind the ingest gave it.
_LOOKUP_ORDER = {
    NodeKind.SERVICE: (NodeKind.SERVICE, NodeKind.EXTERNAL),
    NodeKind.EXTERNAL: (NodeKind.EXTERNAL, NodeKind.SERVICE),
    NodeKind.VIRTUAL: (NodeKind.SERVICE, NodeKind.EXTERNAL),
}


def node_id(kind: str, slug: str) -> str:
    """A node's id in the graph and the API: `service:checkout`, `external:stripe`."""
    return f"{kind}:{slug}"


@dataclass
class Node:
    """A box on the map."""

    id: str
    kind: str  # a NodeKind value
    slug: str
    name: str
    team: str = ""  # the owning team's slug (services only)
    tier: int | None = None
    health: str = ServiceStatus.UNKNOWN
    url: str = ""  # the service page; "" for nodes the catalog does not know as services

    @property
    def is_tier_1(self) -> bool:
        return self.tier == Tier.CRITICAL


@dataclass
class TraceStats:
    """Calls from traces over the window, summed across its minutes."""

    calls: int = 0
    failures: int = 0
    latency_sum_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    minutes: int = TRACE_WINDOW_MINUTES

    def add(self, calls: int, failures: int, latency_sum_ms: float, buckets: list[int]) -> None:
        self.calls += calls
        self.failures += failures
        self.latency_sum_ms += latency_sum_ms
        for i, n in enumerate(buckets[: len(self.buckets)]):
            self.buckets[i] += n

    @property
    def calls_per_minute(self) -> float:
        return self.calls / self.minutes

    @property
    def error_rate(self) -> float | None:
        """Failed calls in percent, None without calls."""
        return 100.0 * self.failures / self.calls if self.calls else None

    @property
    def p99_ms(self) -> float | None:
        return quantile_ms(self.buckets, 0.99)


def quantile_ms(buckets: list[int], q: float) -> float | None:
    """The q-quantile of a histogram over LATENCY_BOUNDS_MS, interpolated inside its bucket
    as Prometheus' histogram_quantile does; the last bound when it falls above it."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            if i >= len(LATENCY_BOUNDS_MS):
                return LATENCY_BOUNDS_MS[-1]
            lower = LATENCY_BOUNDS_MS[i - 1] if i else 0.0
            upper = LATENCY_BOUNDS_MS[i]
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return LATENCY_BOUNDS_MS[-1]


@dataclass
class EdgeCircuit:
    """One circuit on an edge, in one environment."""

    id: int
    name: str
    environment: str
    state: str  # an AggregateState value (stale when no instance reported recently)
    open_instances: int
    total_instances: int


@dataclass
class Edge:
    """`source` calls `target` (node ids), and everything the map knows about those calls."""

    source: str
    target: str
    sources: set[str] = field(default_factory=set)
    circuits: list[EdgeCircuit] = field(default_factory=list)
    traces: TraceStats | None = None

    @property
    def sorted_sources(self) -> list[str]:
        return [s for s in EdgeSource.values if s in self.sources]

    @property
    def circuit_state(self) -> str:
        """The worst state of the edge's circuits (each already the worst of its instances)."""
        if not self.circuits:
            return ""
        return max((c.state for c in self.circuits), key=lambda s: SEVERITY.get(s, 0))

    @property
    def level(self) -> str:
        """How the edge is drawn: an open circuit, then the error rate."""
        state = self.circuit_state
        if state in (AggregateState.OPEN, AggregateState.FORCED_OPEN):
            return EdgeLevel.OPEN
        if state == AggregateState.HALF_OPEN:
            return EdgeLevel.HALF_OPEN
        rate = self.traces.error_rate if self.traces else None
        if rate is None:
            return EdgeLevel.QUIET
        if rate >= FAILING_AT_PERCENT:
            return EdgeLevel.FAILING
        if rate >= ERRORS_AT_PERCENT:
            return EdgeLevel.ERRORS
        return EdgeLevel.OK


@dataclass
class Graph:
    """The map of one environment (or of all of them, environment None)."""

    environment: Environment | None
    nodes: dict[str, Node]
    edges: dict[tuple[str, str], Edge]

    def callers(self) -> dict[str, list[str]]:
        """For each node id, the ids of the nodes that call it."""
        found: dict[str, list[str]] = {key: [] for key in self.nodes}
        for source, target in sorted(self.edges):
            found.setdefault(target, []).append(source)
        return found

    def capped(self, limit: int, first: set[str]) -> Graph:
        """At most `limit` nodes: those in `first` (a scope's own), then the rest by id,
        and only the edges between the nodes kept."""
        order = sorted(self.nodes, key=lambda key: (key not in first, key))
        keep = set(order[:limit])
        nodes = {key: node for key, node in self.nodes.items() if key in keep}
        edges = {pair: e for pair, e in self.edges.items() if keep.issuperset(pair)}
        return Graph(self.environment, nodes, edges)


# build_graph's getter of the edge between two node ids, made on first use.
EdgeFactory = Callable[[str, str], Edge]


def _service_node(service: Service) -> Node:
    key = node_id(NodeKind.SERVICE, service.slug)
    return Node(
        key,
        NodeKind.SERVICE,
        service.slug,
        service.name,
        team=service.team.slug,
        tier=service.tier,
        url=reverse("dashboard:service", args=[service.slug]),
    )


def _external_node(external: ExternalDependency) -> Node:
    key = node_id(NodeKind.EXTERNAL, external.slug)
    health = _vendor_health(external)
    return Node(key, NodeKind.EXTERNAL, external.slug, external.name, health=health)


def build_graph(environment: Environment | None = None, now: datetime | None = None) -> Graph:
    """The whole map of one environment (None: every environment), in seven queries."""
    now = now or timezone.now()
    services = list(Service.objects.select_related("team").order_by("slug"))
    externals = list(ExternalDependency.objects.select_related("vendor_status").order_by("slug"))
    nodes, service_keys, external_keys = _nodes(services, externals)
    rows = service_healths(environment.pk if environment is not None else None)
    _colour_by_health(nodes, service_keys, [(s, status) for (s, _), status in rows.items()])
    declared = Service.depends_on.through.objects.values_list("from_service_id", "to_service_id")
    uses = Service.external_dependencies.through.objects.values_list(
        "service_id", "externaldependency_id"
    )
    circuits = _circuits(environment, None)
    sums = _trace_sums(environment, now, None)
    return _assemble(
        environment, nodes, service_keys, external_keys, declared, uses, circuits, sums, now
    )


def build_scoped_graph(
    environment: Environment | None, seeds: list[Service], now: datetime | None = None
) -> Graph:
    """The map around `seeds` (services): them, what they call and what calls them, and
    those edges, as if cut from the whole map (test_graph.py checks that), but with every
    query filtered to the seeds and their neighbours in SQL, so it costs what the scope
    holds, not the catalog: seven queries whatever the scope or the fleet."""
    now = now or timezone.now()
    seed_ids = {s.pk for s in seeds}
    slugs = [s.slug for s in seeds]
    declared = list(
        Service.depends_on.through.objects.filter(
            Q(from_service_id__in=seed_ids) | Q(to_service_id__in=seed_ids)
        ).values_list("from_service_id", "to_service_id")
    )
    uses = list(
        Service.external_dependencies.through.objects.filter(service_id__in=seed_ids).values_list(
            "service_id", "externaldependency_id"
        )
    )
    circuits = _circuits(
        environment, Q(service_id__in=seed_ids) | Q(protects_service_id__in=seed_ids)
    )
    sums = _trace_sums(environment, now, Q(client__in=slugs) | Q(server__in=slugs))
    named = {name for row in sums for name in row[:2]}
    service_ids = seed_ids | {i for pair in declared for i in pair}
    service_ids |= {c.service_id for c in circuits}
    service_ids |= {c.protects_service_id for c in circuits if c.protects_service_id}
    external_ids = {e for _, e in uses} | {
        c.protects_external_id for c in circuits if c.protects_external_id
    }
    services = list(
        Service.objects.filter(Q(pk__in=service_ids) | Q(slug__in=named))
        .select_related("team")
        .only("slug", "name", "tier", "team__slug")
        .order_by("slug")
    )
    externals = list(
        ExternalDependency.objects.filter(Q(pk__in=external_ids) | Q(slug__in=named))
        .select_related("vendor_status")
        .order_by("slug")
    )
    nodes, service_keys, external_keys = _nodes(services, externals)
    healths = ServiceHealth.objects.filter(service_id__in=list(service_keys))
    if environment is not None:
        healths = healths.filter(environment=environment)
    _colour_by_health(nodes, service_keys, healths.values_list("service_id", "status"))
    whole = _assemble(
        environment, nodes, service_keys, external_keys, declared, uses, circuits, sums, now
    )
    own = {service_keys[pk] for pk in seed_ids}
    edges = {pair: e for pair, e in whole.edges.items() if own & set(pair)}
    keep = own | {key for pair in edges for key in pair}
    return Graph(environment, {k: n for k, n in whole.nodes.items() if k in keep}, edges)


def _nodes(
    services: list[Service], externals: list[ExternalDependency]
) -> tuple[dict[str, Node], dict[int, str], dict[int, str]]:
    """The nodes of these services and externals, and each one's node id by primary key."""
    nodes: dict[str, Node] = {}
    service_keys: dict[int, str] = {}
    external_keys: dict[int, str] = {}
    for service in services:
        node = _service_node(service)
        nodes[node.id] = node
        service_keys[service.pk] = node.id
    # Joined, not a query more: an external node is coloured by its watched state.
    for external in externals:
        node = _external_node(external)
        nodes[node.id] = node
        external_keys[external.pk] = node.id
    return nodes, service_keys, external_keys


def _assemble(
    environment: Environment | None,
    nodes: dict[str, Node],
    service_keys: dict[int, str],
    external_keys: dict[int, str],
    declared: Iterable[tuple[int, int]],
    uses: Iterable[tuple[int, int]],
    circuits: list[Circuit],
    sums: list[tuple[Any, ...]],
    now: datetime,
) -> Graph:
    """The edges from every source, merged per (caller, callee), on the given nodes."""
    edges: dict[tuple[str, str], Edge] = {}

    def edge(source: str, target: str) -> Edge:
        return edges.setdefault((source, target), Edge(source, target))

    for caller, callee in declared:
        edge(service_keys[caller], service_keys[callee]).sources.add(EdgeSource.DECLARED)
    for user, used in uses:
        edge(service_keys[user], external_keys[used]).sources.add(EdgeSource.DECLARED)
    _add_circuits(edge, service_keys, external_keys, circuits, now)
    _add_traces(nodes, edge, sums)
    return Graph(environment, nodes, edges)


# An external dependency's watched state (its status page or our probe) as a node colour.
VENDOR_HEALTH: dict[str, str] = {
    ExternalState.OPERATIONAL: ServiceStatus.HEALTHY,
    ExternalState.DEGRADED: ServiceStatus.DEGRADED,
    ExternalState.PARTIAL_OUTAGE: ServiceStatus.DEGRADED,
    ExternalState.MAINTENANCE: ServiceStatus.DEGRADED,
    ExternalState.MAJOR_OUTAGE: ServiceStatus.DOWN,
}


def _vendor_health(external: ExternalDependency) -> str:
    try:
        state = str(external.vendor_status.state)
    except ObjectDoesNotExist:  # not watched (no status source) or never polled
        return ServiceStatus.UNKNOWN
    return VENDOR_HEALTH.get(state, str(ServiceStatus.UNKNOWN))


def _colour_by_health(
    nodes: dict[str, Node], service_keys: dict[int, str], rows: Iterable[tuple[int, str]]
) -> None:
    """Each service's health in the environment; across environments, its worst verdict."""
    seen: set[str] = set()
    for service_id, status in rows:
        node = nodes[service_keys[service_id]]
        if node.id not in seen or HEALTH_RANK.get(status, 0) > HEALTH_RANK.get(node.health, 0):
            node.health = status
        seen.add(node.id)


def _circuits(environment: Environment | None, where: Q | None) -> list[Circuit]:
    """The circuits guarding a service or an external (those touching `where`'s services)."""
    circuits = (
        Circuit.objects.exclude(protects_service__isnull=True, protects_external__isnull=True)
        .select_related("environment")
        .only(
            "service_id",
            "protects_service_id",
            "protects_external_id",
            "name",
            "state",
            "updated_at",
            "open_instances",
            "total_instances",
            "environment__slug",
            "environment__order",
        )
        .order_by("environment__order", "name")
    )
    if environment is not None:
        circuits = circuits.filter(environment=environment)
    if where is not None:
        circuits = circuits.filter(where)
    return list(circuits)


def _add_circuits(
    edge: EdgeFactory,
    service_keys: dict[int, str],
    external_keys: dict[int, str],
    circuits: list[Circuit],
    now: datetime,
) -> None:
    for circuit in circuits:
        if circuit.protects_service_id is not None:
            target = service_keys[circuit.protects_service_id]
        else:
            assert circuit.protects_external_id is not None
            target = external_keys[circuit.protects_external_id]
        found = edge(service_keys[circuit.service_id], target)
        found.sources.add(EdgeSource.CIRCUIT)
        found.circuits.append(
            EdgeCircuit(
                id=circuit.pk,
                name=circuit.name,
                environment=circuit.environment.slug,
                state=current_state(circuit, now),
                open_instances=circuit.open_instances,
                total_instances=circuit.total_instances,
            )
        )


def _trace_sums(
    environment: Environment | None, now: datetime, where: Q | None
) -> list[tuple[Any, ...]]:
    """The window's EdgeMinute rows summed per client and server, in the database (one row
    per pair, each bucket summed by index)."""
    since = now.replace(second=0, microsecond=0) - timedelta(minutes=TRACE_WINDOW_MINUTES - 1)
    rows = EdgeMinute.objects.filter(minute__gte=since)
    if environment is not None:
        rows = rows.filter(environment=environment)
    if where is not None:
        rows = rows.filter(where)
    bucket_sums = {
        f"b{i}": Coalesce(Sum(f"latency_buckets__{i}"), 0)
        for i in range(len(LATENCY_BOUNDS_MS) + 1)
    }
    return list(
        rows.order_by()
        .values("client", "server", "server_kind")
        .annotate(
            n=Sum("calls"), failed=Sum("failures"), latency=Sum("latency_sum_ms"), **bucket_sums
        )
        .order_by("client", "server", "server_kind")
        .values_list("client", "server", "server_kind", "n", "failed", "latency", *bucket_sums)
    )


def _add_traces(nodes: dict[str, Node], edge: EdgeFactory, sums: list[tuple[Any, ...]]) -> None:
    """The traced calls on their edges; names the catalog does not know become virtual nodes."""
    for client, server, server_kind, calls, failures, latency, *buckets in sums:
        source = _trace_node(nodes, client, NodeKind.SERVICE)
        target = _trace_node(nodes, server, server_kind)
        found = edge(source, target)
        found.sources.add(EdgeSource.TRACE)
        if found.traces is None:
            found.traces = TraceStats()
        found.traces.add(calls, failures, latency, buckets)


def _trace_node(nodes: dict[str, Node], name: str, kind: str) -> str:
    for candidate in _LOOKUP_ORDER.get(NodeKind(kind), _LOOKUP_ORDER[NodeKind.VIRTUAL]):
        key = node_id(candidate, name)
        if key in nodes:
            return key
    key = node_id(NodeKind.VIRTUAL, name)
    nodes.setdefault(key, Node(key, NodeKind.VIRTUAL, name, name))
    return key


@dataclass(frozen=True)
class Hurt:
    """A node that depends, directly or through others, on the one that is down."""

    node: Node
    hops: int
    path: list[str]  # node ids from the hurt node down to the one that is down

    @property
    def via(self) -> str:
        return self.path[1] if len(self.path) > 1 else ""


def blast_radius(graph: Graph, origin: str) -> list[Hurt]:
    """Who is hurt when `origin` is down: every node that calls it, directly or through
    others (the reverse edges, breadth first, so each with its shortest path), closest
    first, tier 1 first within a hop. Cycles are walked once; the origin is not listed."""
    callers = graph.callers()
    paths: dict[str, list[str]] = {origin: [origin]}
    queue = deque([origin])
    while queue:
        current = queue.popleft()
        for caller in callers.get(current, []):
            if caller not in paths:
                paths[caller] = [caller, *paths[current]]
                queue.append(caller)
    hurt = [
        Hurt(graph.nodes[key], len(path) - 1, path)
        for key, path in paths.items()
        if key != origin and key in graph.nodes
    ]
    return sorted(hurt, key=lambda h: (h.hops, not h.node.is_tier_1, h.node.id))
