"""Where the map draws each node and edge: layers by dependency depth, callers above callees.

A node's layer is its longest chain of callers (back edges of cycles left out), so entry
points sit at the top and databases and external dependencies at the bottom; an entry
point is pulled down to just above what it calls, and unconnected nodes go last. Within a
layer nodes follow the mean position of their callers, which keeps most edges short and
uncrossed; a layer wider than ROW_WIDTH nodes wraps onto more rows so 60 services stay
readable without shrinking the text.
"""

from __future__ import annotations

from dataclasses import dataclass

from topology.graph import Edge, Graph, Node

NODE_WIDTH = 168
NODE_HEIGHT = 46
GAP_X = 28
GAP_Y = 64
MARGIN = 24
# Ten boxes is about 2,000 px: wider layers wrap rather than scale the text down.
ROW_WIDTH = 10


@dataclass(frozen=True)
class PlacedNode:
    node: Node
    x: float
    y: float

    @property
    def centre_x(self) -> float:
        return self.x + NODE_WIDTH / 2

    @property
    def label(self) -> str:
        return _shorten(self.node.name if self.node.kind == "service" else self.node.slug, 22)

    @property
    def detail(self) -> str:
        if self.node.kind == "service":
            return f"{self.node.team} · tier {self.node.tier}"
        return "external" if self.node.kind == "external" else "seen in traces"


@dataclass(frozen=True)
class PlacedEdge:
    edge: Edge
    path: str  # the SVG path's `d`


@dataclass(frozen=True)
class Layout:
    nodes: list[PlacedNode]
    edges: list[PlacedEdge]
    width: float
    height: float


def lay_out(graph: Graph) -> Layout:
    """Positions for every node of the graph and a path for every edge."""
    layers = _layers(graph)
    rows = _rows(graph, layers)
    widest = max((len(row) for row in rows), default=0)
    width = 2 * MARGIN + widest * NODE_WIDTH + max(widest - 1, 0) * GAP_X
    placed: dict[str, PlacedNode] = {}
    for r, row in enumerate(rows):
        row_width = len(row) * NODE_WIDTH + (len(row) - 1) * GAP_X
        left = (width - row_width) / 2
        for c, key in enumerate(row):
            placed[key] = PlacedNode(
                graph.nodes[key],
                left + c * (NODE_WIDTH + GAP_X),
                MARGIN + r * (NODE_HEIGHT + GAP_Y),
            )
    height = 2 * MARGIN + len(rows) * NODE_HEIGHT + max(len(rows) - 1, 0) * GAP_Y
    edges = [
        PlacedEdge(graph.edges[pair], _path(placed[pair[0]], placed[pair[1]]))
        for pair in sorted(graph.edges)
        if pair[0] in placed and pair[1] in placed
    ]
    return Layout(list(placed.values()), edges, width + 60, height)


def _layers(graph: Graph) -> dict[str, int]:
    """Each node's depth: the longest chain of callers above it, cycles broken."""
    calls: dict[str, list[str]] = {key: [] for key in graph.nodes}
    for source, target in sorted(graph.edges):
        if source in calls and target in calls and source != target:
            calls[source].append(target)
    forward = _without_back_edges(calls)
    depth = dict.fromkeys(graph.nodes, 0)
    waiting = {key: 0 for key in graph.nodes}
    for targets in forward.values():
        for target in targets:
            waiting[target] += 1
    ready = sorted(key for key, n in waiting.items() if n == 0)
    while ready:
        key = ready.pop()
        for target in forward[key]:
            depth[target] = max(depth[target], depth[key] + 1)
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    # An entry point nothing calls sits just above what it calls, not at the very top;
    # a node with no edge at all goes below everything, out of the way.
    bottom = max(depth.values(), default=0) + 1
    called = {target for targets in forward.values() for target in targets}
    for key in [key for key in depth if key not in called]:
        depth[key] = min((depth[t] for t in forward[key]), default=bottom + 1) - 1
    return depth


def _without_back_edges(calls: dict[str, list[str]]) -> dict[str, list[str]]:
    """The edges minus those closing a cycle (found by depth-first search, iteratively)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    forward: dict[str, list[str]] = {key: [] for key in calls}
    for start in sorted(calls):
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(calls[start]))]
        while stack:
            key, targets = stack[-1]
            target = next(targets, None)
            if target is None:
                state[key] = 2
                stack.pop()
            elif state.get(target) == 1:
                continue  # a back edge: drawn, but not counted for depth
            else:
                forward[key].append(target)
                if target not in state:
                    state[target] = 1
                    stack.append((target, iter(calls[target])))
    return forward


def _rows(graph: Graph, depth: dict[str, int]) -> list[list[str]]:
    """Layers top to bottom, each ordered by its callers' mean position, then wrapped."""
    callers = graph.callers()
    position: dict[str, float] = {}
    rows: list[list[str]] = []
    for layer in range(max(depth.values(), default=-1) + 1):
        members = [key for key, d in depth.items() if d == layer]

        def order(key: str) -> tuple[float, str, str]:
            seen = [position[c] for c in callers.get(key, []) if c in position]
            mean = sum(seen) / len(seen) if seen else float("inf")
            return (mean, graph.nodes[key].team, key)

        members.sort(key=order)
        for i, key in enumerate(members):
            position[key] = i / max(len(members) - 1, 1)
        rows.extend(members[i : i + ROW_WIDTH] for i in range(0, len(members), ROW_WIDTH))
    return rows


def _path(source: PlacedNode, target: PlacedNode) -> str:
    """Down from the caller's bottom to the callee's top; otherwise a loop out to the right."""
    if target.y > source.y:
        x1, y1 = source.centre_x, source.y + NODE_HEIGHT
        x2, y2 = target.centre_x, target.y
        bend = (y2 - y1) / 2
        return _curve((x1, y1), (x1, y1 + bend), (x2, y2 - bend), (x2, y2))
    x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT / 2
    x2, y2 = target.x + NODE_WIDTH, target.y + NODE_HEIGHT / 2
    reach = 40 + abs(y1 - y2) / 4
    return _curve((x1, y1), (x1 + reach, y1), (x2 + reach, y2), (x2, y2))


def _curve(*points: tuple[float, float]) -> str:
    """An SVG cubic Bézier from the first point to the last, the middle two its handles."""
    start, *rest = (f"{x:.0f},{y:.0f}" for x, y in points)
    return f"M{start} C{' '.join(rest)}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
