"""POST /v1/traces: OTLP protobuf and JSON into per-minute edges, paired as the
servicegraph connector pairs them, with the token's team checked and bad input refused.

Real PostgreSQL and Redis (the short-wait store); requests go through Django's ASGI-capable
test client here, and through a real uvicorn with the real OTLP exporter in
test_ingest_exporter.py.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from catalog.models import ApiToken, ExternalDependency, Service
from controlplane import redis as redis_clients
from topology.edges import quantile_ms, recent_edges
from topology.ingest import service as ingest_service
from topology.ingest import views
from topology.models import LATENCY_BOUNDS_MS, EdgeMinute
from topology.tests.otlp import (
    CLIENT,
    CONSUMER,
    PRODUCER,
    SERVER,
    S,
    call,
    ids,
    otlp_json,
    protobuf,
)

PB = "application/x-protobuf"


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    r = redis_clients.client()
    for key in r.scan_iter("sbx:otlp:*"):
        r.delete(key)
    ingest_service.forget_catalog()
    yield
    ingest_service.forget_catalog()


@pytest.fixture
def fleet(world: Any) -> dict[str, Any]:
    inventory = Service.objects.create(slug="inventory", name="Inventory", team=world.team)
    ExternalDependency.objects.create(slug="stripe", name="Stripe")
    _, plain = ApiToken.issue(team=world.team, name="fleet", scopes=["report"])
    _, other = ApiToken.issue(team=world.other_team, name="other", scopes=["report"])
    _, read_only = ApiToken.issue(team=world.team, name="ro", scopes=["read"])
    return {"inventory": inventory, "token": plain, "other": other, "read": read_only}


def post(token: str | None, body: bytes, content_type: str = PB, **headers: str) -> Any:
    client = Client()
    extra: dict[str, Any] = {f"HTTP_{k.upper()}": v for k, v in headers.items()}
    if token:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.post("/v1/traces", body, content_type, **extra)


def edges() -> dict[tuple[str, str, str], EdgeMinute]:
    return {(e.client, e.server, e.connection_type): e for e in EdgeMinute.objects.all()}


def test_a_call_in_one_batch_becomes_an_edge(world: Any, fleet: dict[str, Any]) -> None:
    c1, s1 = call(client_ms=30, server_ms=7)
    c2, s2 = call(client_ms=900, server_ms=700, error=True)
    body = protobuf([("checkout", "production", [c1, c2]), ("inventory", "production", [s1, s2])])
    response = post(fleet["token"], body)
    assert response.status_code == 200 and response["Content-Type"] == PB
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")
    edge = edges()[("checkout", "inventory", "")]
    assert edge.environment_id == world.production.pk
    assert (edge.calls, edge.failures, edge.server_kind) == (2, 1, "service")
    assert edge.latency_sum_ms == pytest.approx(707)  # the server's durations
    assert len(edge.latency_buckets) == len(LATENCY_BOUNDS_MS) + 1
    assert edge.latency_buckets[LATENCY_BOUNDS_MS.index(8)] == 1  # 7 ms: (6, 8]
    assert edge.latency_buckets[LATENCY_BOUNDS_MS.index(800)] == 1  # 700 ms: (400, 800]
    assert edge.minute.second == 0 and edge.minute.microsecond == 0

    # The next batch adds to the same minute's row (one upsert per batch).
    c3, s3 = call(server_ms=3)
    post(
        fleet["token"],
        protobuf([("checkout", "production", [c3]), ("inventory", "production", [s3])]),
    )
    edge.refresh_from_db()
    assert edge.calls == 3 and EdgeMinute.objects.count() == 1


def test_the_halves_of_a_call_pair_across_batches(world: Any, fleet: dict[str, Any]) -> None:
    client_span, server_span = call(server_ms=42)
    assert (
        post(fleet["token"], protobuf([("checkout", "staging", [client_span])])).status_code == 200
    )
    assert EdgeMinute.objects.count() == 0  # waiting for the other side
    post(fleet["token"], protobuf([("inventory", "staging", [server_span])]))
    edge = edges()[("checkout", "inventory", "")]
    assert edge.calls == 1 and edge.latency_sum_ms == pytest.approx(42)
    assert edge.environment_id == world.staging.pk
    # Server first, then client, works the same way; so does producer/consumer.
    trace_id, span_id = ids()
    post(
        fleet["token"],
        protobuf([("inventory", None, [S(CONSUMER, trace_id, os.urandom(8), span_id, 4)])]),
    )
    post(fleet["token"], protobuf([("checkout", None, [S(PRODUCER, trace_id, span_id, b"", 1)])]))
    messaging = edges()[("checkout", "inventory", "messaging")]
    assert messaging.calls == 1 and messaging.environment_id is None
    stats = ingest_service.stats()
    assert stats["pairs_after_wait"] == 2 and stats["unpaired_expired"] == 0


def test_json_with_hex_and_base64_ids(world: Any, fleet: dict[str, Any]) -> None:
    for base64_ids in (False, True):
        c, s = call(server_ms=15)
        document = otlp_json(
            [("checkout", "production", [c]), ("inventory", "production", [s])],
            base64_ids=base64_ids,
        )
        response = post(fleet["token"], json.dumps(document).encode(), "application/json")
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "application/json" and response.json() == {}
    assert edges()[("checkout", "inventory", "")].calls == 2


def test_kinds_as_names_in_json(world: Any, fleet: dict[str, Any]) -> None:
    c, s = call()
    document = otlp_json([("checkout", None, [c]), ("inventory", None, [s])])
    spans = document["resourceSpans"]
    spans[0]["scopeSpans"][0]["spans"][0]["kind"] = "SPAN_KIND_CLIENT"
    spans[1]["scopeSpans"][0]["spans"][0]["kind"] = "SPAN_KIND_SERVER"
    spans[1]["scopeSpans"][0]["spans"][0]["status"] = {"code": "STATUS_CODE_ERROR"}
    assert (
        post(fleet["token"], json.dumps(document).encode(), "application/json").status_code == 200
    )
    assert edges()[("checkout", "inventory", "")].failures == 1


def test_gzip(world: Any, fleet: dict[str, Any]) -> None:
    c, s = call()
    body = gzip.compress(protobuf([("checkout", None, [c]), ("inventory", None, [s])]))
    assert post(fleet["token"], body, CONTENT_ENCODING="gzip").status_code == 200
    assert edges()[("checkout", "inventory", "")].calls == 1


def test_counts_are_scaled_by_the_sampling_ratio(world: Any, fleet: dict[str, Any]) -> None:
    # OTel tracestate threshold th:8 rejects half: p = 0.5, each span counts twice.
    c1, s1 = call(trace_state="ot=th:8")
    c1.trace_state = "ot=th:8"
    # th:c (p = 0.25) with other members around it.
    c2, s2 = call(trace_state="vendor=x,ot=rv:abcdef;th:c")
    # sampling.probability and SampleRate attributes.
    c3, s3 = call(attributes={"sampling.probability": 0.1})
    c4, s4 = call(error=True, attributes={"SampleRate": 20})
    body = protobuf([("checkout", None, [c1, c2, c3, c4]), ("inventory", None, [s1, s2, s3, s4])])
    assert post(fleet["token"], body).status_code == 200
    edge = edges()[("checkout", "inventory", "")]
    assert edge.calls == 2 + 4 + 10 + 20
    assert edge.failures == 20
    assert sum(edge.latency_buckets) == 36


def test_another_teams_spans_are_refused_and_not_stored(world: Any, fleet: dict[str, Any]) -> None:
    c, s = call()
    c_other, s_other = call()
    body = protobuf(
        [
            ("checkout", None, [c]),
            ("inventory", None, [s]),
            ("indexer", None, [c_other]),  # the search team's service
            ("nosuch", None, [s_other]),
        ]
    )
    response = post(fleet["token"], body)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "'indexer' belongs to another team" in partial.error_message
    assert "'nosuch' is not a service in the catalog" in partial.error_message
    assert set(edges()) == {("checkout", "inventory", "")}
    # JSON says the same in JSON.
    document = otlp_json([("indexer", None, [call()[0]])])
    answer = post(fleet["token"], json.dumps(document).encode(), "application/json").json()
    assert answer["partialSuccess"]["rejectedSpans"] == "1"
    # A token of the other team may send for its own service; a read token may not send.
    other = post(fleet["other"], protobuf([("indexer", None, [call()[0]])]))
    assert not ExportTraceServiceResponse.FromString(other.content).HasField("partial_success")
    read = ExportTraceServiceResponse.FromString(
        post(fleet["read"], protobuf([("checkout", None, [call()[0]])])).content
    )
    assert read.partial_success.rejected_spans == 1
    assert "report scope" in read.partial_success.error_message


def test_a_service_restricted_token_sends_only_for_its_service(
    world: Any, fleet: dict[str, Any]
) -> None:
    _, plain = ApiToken.issue(
        team=world.team, name="inv", scopes=["report"], service=fleet["inventory"]
    )
    response = post(plain, protobuf([("checkout", None, [call()[0]])]))
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert (
        partial.rejected_spans == 1 and "only report for its own service" in partial.error_message
    )


def test_without_a_valid_token_401(world: Any, fleet: dict[str, Any]) -> None:
    body = protobuf([("checkout", None, [call()[0]])])
    assert post(None, body).status_code == 401
    response = post("sbx_nope_nope", body)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        (b"\xff\xff\xff\xff not protobuf", PB, "not an OTLP ExportTraceServiceRequest"),
        (b"{not json", "application/json", "not JSON"),
        (b"[]", "application/json", "body must be an object"),
        (b"{}", "text/plain", "Content-Type 'text/plain' is not OTLP"),
        (b"", "", "is not OTLP"),
    ],
)
def test_malformed_input_400_and_nothing_stored(
    world: Any, fleet: dict[str, Any], body: bytes, content_type: str, needle: str
) -> None:
    response = post(fleet["token"], body, content_type)
    assert response.status_code == 400
    assert needle in response.content.decode(errors="replace")
    assert EdgeMinute.objects.count() == 0


def test_bad_ids_refuse_the_whole_request(world: Any, fleet: dict[str, Any]) -> None:
    good_client, good_server = call()
    bad = S(SERVER, b"\x00" * 16, os.urandom(8), os.urandom(8))
    body = protobuf([("checkout", None, [good_client]), ("inventory", None, [good_server, bad])])
    response = post(fleet["token"], body)
    assert response.status_code == 400 and b"traceId must be 16 bytes" in response.content
    short = S(SERVER, os.urandom(16), os.urandom(4), os.urandom(8))
    response = post(fleet["token"], protobuf([("inventory", None, [short])]))
    assert response.status_code == 400 and b"spanId must be 8 bytes" in response.content
    document = otlp_json([("checkout", None, [good_client]), ("inventory", None, [good_server])])
    document["resourceSpans"][1]["scopeSpans"][0]["spans"][0]["traceId"] = "zz" * 16
    response = post(fleet["token"], json.dumps(document).encode(), "application/json")
    assert response.status_code == 400
    assert response.json()["message"].startswith("resourceSpans[1].scopeSpans[0].spans[0].traceId")
    assert EdgeMinute.objects.count() == 0
    assert not list(redis_clients.client().scan_iter("sbx:otlp:half:*"))  # nothing waiting


def test_over_the_size_limit_413_also_after_gzip(
    world: Any, fleet: dict[str, Any], settings: Any
) -> None:
    settings.SIGNALBOX_OTLP_MAX_BYTES = 64 * 1024
    big = protobuf([("checkout", None, [call()[0] for _ in range(2000)])])
    assert len(big) > 64 * 1024
    assert post(fleet["token"], big).status_code == 413
    bomb = gzip.compress(b"\x00" * (10 * 1024 * 1024))  # 10 MiB of zeros in ~10 KiB
    assert len(bomb) < 64 * 1024
    response = post(fleet["token"], bomb, CONTENT_ENCODING="gzip")
    assert response.status_code == 413 and b"after gzip" in response.content
    assert post(fleet["token"], b"not gzip", CONTENT_ENCODING="gzip").status_code == 400
    assert post(fleet["token"], b"x", CONTENT_ENCODING="br").status_code == 400
    assert EdgeMinute.objects.count() == 0


def test_busy_429_with_retry_after(
    world: Any, fleet: dict[str, Any], monkeypatch: Any, settings: Any
) -> None:
    monkeypatch.setattr(views, "_in_flight", settings.SIGNALBOX_OTLP_MAX_IN_FLIGHT)
    response = post(fleet["token"], protobuf([("checkout", None, [call()[0]])]))
    assert response.status_code == 429 and response["Retry-After"] == "1"


def test_unpaired_client_spans_expire_into_virtual_edges(
    world: Any, fleet: dict[str, Any], settings: Any
) -> None:
    settings.SIGNALBOX_OTLP_PAIR_WAIT_SECONDS = 1
    trace_id, _ = ids()
    spans = [
        S(CLIENT, trace_id, os.urandom(8), b"", 250, attributes={"peer.service": "stripe"}),
        S(CLIENT, trace_id, os.urandom(8), b"", 3, True, attributes={"db.system": "postgresql"}),
        S(
            CLIENT,
            trace_id,
            os.urandom(8),
            b"",
            9,
            attributes={"server.address": "api.example.com"},
        ),
        S(CLIENT, trace_id, os.urandom(8), b"", 9, attributes={"peer.service": "inventory"}),
        S(CLIENT, trace_id, os.urandom(8), b"", 9, attributes={"peer.service": "od\x1ed\x1f"}),
        S(CLIENT, trace_id, os.urandom(8), b"", 9),  # nowhere named: only counted
        S(SERVER, trace_id, os.urandom(8), os.urandom(8), 9),  # its caller never reported
    ]
    post(fleet["token"], protobuf([("checkout", "production", spans)]))
    assert EdgeMinute.objects.count() == 0
    time.sleep(1.2)
    assert ingest_service.sweep() == 7
    found = edges()
    assert found[("checkout", "stripe", "")].server_kind == "external"
    assert found[("checkout", "stripe", "")].latency_sum_ms == pytest.approx(250)  # client's
    database = found[("checkout", "postgresql", "database")]
    assert (database.server_kind, database.failures) == ("virtual", 1)
    assert found[("checkout", "api.example.com", "")].server_kind == "virtual"
    assert found[("checkout", "inventory", "")].server_kind == "service"
    assert found[("checkout", "odd", "")].calls == 1  # separators taken out of the name
    assert len(found) == 5
    stats = ingest_service.stats()
    assert stats["unpaired_expired"] == 7 and stats["spans_received"] == 7
    # The same number in the API and on /metrics.
    client = Client()
    client.force_login(world.viewer)
    assert client.get("/api/v1/trace-ingest").json()["unpaired_expired"] == 7
    assert b"signalbox_otlp_unpaired_spans_expired_total" in client.get("/metrics").content


def test_recent_edges_sums_minutes_and_estimates_percentiles(world: Any) -> None:
    now = timezone.now().replace(second=0, microsecond=0)
    width = len(LATENCY_BOUNDS_MS) + 1

    def row(minute: Any, calls: int, failures: int, bucket: int, env: Any = None) -> None:
        buckets = [0] * width
        buckets[bucket] = calls
        EdgeMinute.objects.create(
            minute=minute, environment=env or world.production, client="checkout",
            server="inventory", calls=calls, failures=failures,
            latency_sum_ms=calls * 5.0, latency_buckets=buckets,
        )  # fmt: skip

    row(now - timedelta(minutes=2), 90, 1, LATENCY_BOUNDS_MS.index(6))  # (4, 6]
    row(now - timedelta(minutes=1), 10, 9, LATENCY_BOUNDS_MS.index(1000))  # (800, 1000]
    row(now - timedelta(minutes=30), 1000, 1000, 0)  # too old
    row(now, 5, 0, 0, env=world.staging)  # other environment
    [edge] = recent_edges(now - timedelta(minutes=5), environment=world.production)
    assert (edge["calls"], edge["failures"]) == (100, 10)
    assert edge["error_rate"] == pytest.approx(0.1)
    assert 4 < edge["p50_ms"] <= 6 and 800 < edge["p99_ms"] <= 1000
    assert edge["latency_avg_ms"] == pytest.approx(5.0)
    assert recent_edges(now - timedelta(minutes=5), environment="staging")[0]["calls"] == 5
    assert sum(e["calls"] for e in recent_edges(now - timedelta(minutes=5))) == 105
    assert quantile_ms([0] * width, 0.5) is None
    assert quantile_ms([0] * (width - 1) + [3], 0.99) == LATENCY_BOUNDS_MS[-1]


def test_redis_down_503_with_retry_after_and_nothing_stored(
    world: Any, fleet: dict[str, Any], monkeypatch: Any
) -> None:
    import socket

    from topology.ingest import edges as ingest_edges

    with socket.socket() as sock:  # a port nothing listens on: Redis is down
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = redis_clients.client(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    monkeypatch.setattr(ingest_edges, "_script", dead.register_script(ingest_edges._PAIR_SCRIPT))
    c, s = call()
    response = post(fleet["token"], protobuf([("checkout", None, [c]), ("inventory", None, [s])]))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert b"retry" in response.content
    assert EdgeMinute.objects.count() == 0


def test_a_row_whose_environment_is_gone_is_dropped_and_the_rest_stored(
    world: Any, fleet: dict[str, Any]
) -> None:
    from topology.ingest.edges import Batch, flush
    from topology.models import NodeKind

    # given a batch holding a half that waited in the pairing store while its environment
    # was deleted (its id now names nothing), beside a call of a live environment
    minute = timezone.now().replace(second=0, microsecond=0)
    buckets = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    batch = Batch()
    batch.rows[(minute, world.production.pk, "checkout", "inventory", "")] = [
        NodeKind.SERVICE, 2, 0, 10.0, buckets,
    ]  # fmt: skip
    batch.rows[(minute, 10**9, "checkout", "inventory", "")] = [
        NodeKind.SERVICE, 1, 0, 5.0, buckets,
    ]  # fmt: skip
    # then the batch is stored without the dead row, instead of failing every export (503)
    # until that half expires
    assert flush(batch) == 1
    [edge] = EdgeMinute.objects.all()
    assert edge.environment_id == world.production.pk and edge.calls == 2
