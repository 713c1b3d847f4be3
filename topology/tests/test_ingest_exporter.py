"""The real OpenTelemetry SDK exporting to a real uvicorn serving the control plane: spans
of two services, linked by propagated context, come out as an edge in EdgeMinute.

The SDK has no OTLP/JSON exporter, so the JSON case posts the SDK's own encoding of its
spans (opentelemetry-exporter-otlp-proto-common) rendered by protobuf's JSON mapping (base64
ids) and with the ids rewritten to hex as the OTLP spec writes them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from catalog.models import ApiToken, Service
from controlplane.tests.browser import AsgiServer
from controlplane.tests.resilience import wait_for
from topology.models import EdgeMinute

pytestmark = pytest.mark.django_db(transaction=True)


def provider(service: str, environment: str) -> tuple[TracerProvider, InMemorySpanExporter]:
    resource = Resource.create(
        {"service.name": service, "deployment.environment.name": environment}
    )
    tracer_provider = TracerProvider(resource=resource)
    memory = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    return tracer_provider, memory


def traced_calls(count: int, fail_every: int = 0) -> tuple[list[Any], list[Any]]:
    """`count` calls checkout -> inventory, the context carried in real traceparent headers."""
    checkout, checkout_spans = provider("checkout", "production")
    inventory, inventory_spans = provider("inventory", "production")
    client_tracer = checkout.get_tracer("test")
    server_tracer = inventory.get_tracer("test")
    for i in range(count):
        with client_tracer.start_as_current_span("GET /stock", kind=SpanKind.CLIENT):
            headers: dict[str, str] = {}
            propagate.inject(headers)
        parent = propagate.extract(headers)
        with server_tracer.start_as_current_span(
            "GET /stock", context=parent, kind=SpanKind.SERVER
        ) as span:
            if fail_every and i % fail_every == 0:
                span.set_status(Status(StatusCode.ERROR))
    return list(checkout_spans.get_finished_spans()), list(inventory_spans.get_finished_spans())


def exporter(server: AsgiServer, token: str, **options: Any) -> OTLPSpanExporter:
    return OTLPSpanExporter(
        endpoint=f"{server.url}/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        **options,
    )


def calls() -> int:
    return sum(e.calls for e in EdgeMinute.objects.filter(client="checkout", server="inventory"))


def test_the_sdk_exporter_protobuf_and_gzip(world: Any, asgi_server: AsgiServer) -> None:
    Service.objects.create(slug="inventory", name="Inventory", team=world.team)
    _, plain = ApiToken.issue(team=world.team, name="otel", scopes=["report"])
    client_spans, server_spans = traced_calls(10, fail_every=5)
    # Client halves first, in their own export (another process would send them): they wait
    # in the short-wait store until the server halves come.
    assert exporter(asgi_server, plain).export(client_spans) is SpanExportResult.SUCCESS
    gzipped = exporter(asgi_server, plain, compression=Compression.Gzip)
    assert gzipped.export(server_spans) is SpanExportResult.SUCCESS
    edge = EdgeMinute.objects.get(client="checkout", server="inventory")
    assert (edge.calls, edge.failures) == (10, 2)
    assert edge.environment_id == world.production.pk
    # A bad token: the exporter is told 401 and reports failure; nothing is stored.
    more_client, more_server = traced_calls(3)
    assert exporter(asgi_server, "sbx_bad_token").export(more_client + more_server) is (
        SpanExportResult.FAILURE
    )
    assert calls() == 10


def _hex_ids(document: Any) -> Any:
    import base64

    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
    return document


def test_otlp_json_from_sdk_spans(world: Any, asgi_server: AsgiServer) -> None:
    Service.objects.create(slug="inventory", name="Inventory", team=world.team)
    _, plain = ApiToken.issue(team=world.team, name="otel", scopes=["report"])
    headers = {"Authorization": f"Bearer {plain}", "Content-Type": "application/json"}
    for hex_ids in (False, True):
        client_spans, server_spans = traced_calls(4)
        document = MessageToDict(encode_spans(client_spans + server_spans))
        if hex_ids:
            document = _hex_ids(document)
        response = httpx.post(
            f"{asgi_server.url}/v1/traces", content=json.dumps(document), headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
    assert wait_for(lambda: calls() == 8, 5, "8 calls in EdgeMinute")
    bad = httpx.post(f"{asgi_server.url}/v1/traces", content=b"{", headers=headers)
    assert bad.status_code == 400 and "not JSON" in bad.json()["message"]
