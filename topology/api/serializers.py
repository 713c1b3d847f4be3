"""The dependency map's API shapes: nodes, edges with their sources, blast radius."""

from __future__ import annotations

from rest_framework import serializers

from topology.choices import EdgeLevel, EdgeSource
from topology.models import NodeKind


class NodeSerializer(serializers.Serializer[object]):
    id = serializers.CharField(help_text="`<kind>:<slug>`, as edges and paths name it")
    kind = serializers.ChoiceField(choices=NodeKind.choices)
    slug = serializers.CharField()
    name = serializers.CharField()
    team = serializers.CharField(help_text="the owning team's slug; empty but for services")
    tier = serializers.IntegerField(allow_null=True)
    health = serializers.CharField(
        help_text="healthy, degraded, down or unknown; across environments, the worst"
    )


class EdgeCircuitSerializer(serializers.Serializer[object]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    environment = serializers.CharField()
    state = serializers.CharField(help_text="the circuit's state across its instances, or stale")
    open_instances = serializers.IntegerField()
    total_instances = serializers.IntegerField()


class TraceStatsSerializer(serializers.Serializer[object]):
    minutes = serializers.IntegerField(help_text="the window the figures cover")
    calls = serializers.IntegerField()
    failures = serializers.IntegerField()
    calls_per_minute = serializers.FloatField()
    error_rate = serializers.FloatField(allow_null=True, help_text="percent")
    p99_ms = serializers.FloatField(
        allow_null=True, help_text="from the latency histogram, interpolated in its bucket"
    )


class EdgeSerializer(serializers.Serializer[object]):
    caller = serializers.CharField(source="source", help_text="the calling node's id")
    callee = serializers.CharField(source="target", help_text="the called node's id")
    sources = serializers.ListField(
        source="sorted_sources", child=serializers.ChoiceField(choices=EdgeSource.choices)
    )
    level = serializers.ChoiceField(choices=EdgeLevel.choices)
    circuit_state = serializers.CharField(help_text="the worst of its circuits; empty: none")
    circuits = EdgeCircuitSerializer(many=True)
    traces = TraceStatsSerializer(allow_null=True)


class GraphSerializer(serializers.Serializer[object]):
    environment = serializers.CharField(allow_null=True)
    nodes = NodeSerializer(many=True)
    edges = EdgeSerializer(many=True)


class HurtSerializer(serializers.Serializer[object]):
    node = NodeSerializer()
    hops = serializers.IntegerField()
    path = serializers.ListField(
        child=serializers.CharField(), help_text="node ids from this node down to the origin"
    )
    tier_1 = serializers.BooleanField(source="node.is_tier_1")


class BlastRadiusSerializer(serializers.Serializer[object]):
    environment = serializers.CharField(allow_null=True)
    origin = NodeSerializer()
    hurt = HurtSerializer(many=True)
    tier_1 = serializers.ListField(child=serializers.CharField(), help_text="hurt tier 1 ids")
