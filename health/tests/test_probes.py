"""Every probe kind against real servers: HTTP (aiohttp), gRPC health, TLS with a made cert."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from aiohttp.resolver import ThreadedResolver
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from health.choices import CheckKind, CheckStatus, JsonOp, Scheme
from health.probes import ProbeResult
from health.probes.runtime import runtime
from health.specs import ProbeSpec
from health.tests.conftest import Instances, health_json, serve_in_thread


def probe(spec: ProbeSpec, port: int, host: str = "127.0.0.1") -> ProbeResult:
    rt = runtime()
    return rt.run(rt.probe(spec, host, port))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- HTTP ---------------------------------------------------------------------------------


def test_it_passes_a_healthy_health_json_endpoint(instances: Instances) -> None:
    result = probe(ProbeSpec(), instances.port)
    assert result.status == CheckStatus.PASS
    assert result.output["http_status"] == 200
    assert result.latency_ms > 0


def test_it_keeps_component_checks_and_names_the_failing_one(instances: Instances) -> None:
    # given an instance whose database component fails
    instances.status = 503
    instances.health = health_json("fail", db=("fail", "connection refused"), cache=("pass", ""))
    # when probed
    result = probe(ProbeSpec(), instances.port)
    # then it fails, says which component and why, and keeps every component
    assert result.status == CheckStatus.FAIL
    assert result.reason == "HTTP 503; component db fail: connection refused"
    assert {c["name"]: c["status"] for c in result.output["components"]} == {
        "db": "fail",
        "cache": "pass",
    }


def test_a_warning_health_document_warns(instances: Instances) -> None:
    instances.health = health_json("warn", disk=("warn", "91% full"))
    result = probe(ProbeSpec(), instances.port)
    assert result.status == CheckStatus.WARN
    assert "disk warn: 91% full" in result.reason


def test_a_fail_document_fails_even_with_http_200(instances: Instances) -> None:
    instances.health = health_json("fail", queue=("fail", "stuck"))
    result = probe(ProbeSpec(), instances.port)
    assert result.status == CheckStatus.FAIL
    assert "queue fail: stuck" in result.reason


def test_an_unexpected_status_fails_with_the_code(instances: Instances) -> None:
    instances.status = 500
    instances.health = {"oops": True}
    result = probe(ProbeSpec(), instances.port)
    assert (result.status, result.reason) == (CheckStatus.FAIL, "HTTP 500")


def test_expected_statuses_are_configurable(instances: Instances) -> None:
    instances.status = 404
    instances.health = {}
    assert probe(ProbeSpec(expected_statuses=((404, 404),)), instances.port).status == "pass"


def test_body_contains_and_regex(instances: Instances) -> None:
    ok = ProbeSpec(path="/text", body_contains="nominal", body_regex=r"all \w+ nominal")
    assert probe(ok, instances.port).status == CheckStatus.PASS
    missing = probe(ProbeSpec(path="/text", body_contains="degraded"), instances.port)
    assert (missing.status, missing.reason) == (CheckStatus.FAIL, "body lacks 'degraded'")
    nomatch = probe(ProbeSpec(path="/text", body_regex=r"^\d+$"), instances.port)
    assert nomatch.status == CheckStatus.FAIL


def test_json_path_conditions(instances: Instances) -> None:
    passing = ProbeSpec(
        path="/json",
        json_conditions=(
            ("$.db.state", JsonOp.EQUALS, "ok"),
            ("$.db.connections", JsonOp.LESS, 100),
            ("$.version", JsonOp.EXISTS, None),
        ),
    )
    assert probe(passing, instances.port).status == CheckStatus.PASS
    failing = ProbeSpec(path="/json", json_conditions=(("$.db.connections", JsonOp.LESS, 10),))
    result = probe(failing, instances.port)
    assert result.status == CheckStatus.FAIL
    assert result.reason == "$.db.connections: expected less than 10, got 12"


def test_a_slow_answer_warns_past_max_latency(instances: Instances) -> None:
    instances.delay = 0.05
    result = probe(ProbeSpec(max_latency_ms=10), instances.port)
    assert result.status == CheckStatus.WARN
    assert result.reason.startswith("slow: ")


def test_it_times_out(instances: Instances) -> None:
    instances.delay = 1.0
    result = probe(ProbeSpec(timeout_seconds=0.2), instances.port)
    assert (result.status, result.reason) == (CheckStatus.FAIL, "timeout after 0.2 s")
    assert 150 < result.latency_ms < 900


def test_a_closed_port_is_refused() -> None:
    result = probe(ProbeSpec(), free_port())
    assert (result.status, result.reason) == (CheckStatus.FAIL, "connection refused")


def test_it_follows_a_redirect_on_the_instance(instances: Instances) -> None:
    result = probe(ProbeSpec(path="/redirect-same"), instances.port)
    assert result.status == CheckStatus.PASS
    assert "components" in result.output  # the /health document was reached


def test_it_never_follows_a_redirect_off_the_instance(instances: Instances) -> None:
    # given an instance redirecting to the cloud metadata address
    spec = ProbeSpec(path="/redirect-off", expected_statuses=((200, 299),))
    # when probed
    result = probe(spec, instances.port)
    # then the redirect is judged as the answer and never followed
    assert result.status == CheckStatus.FAIL
    assert result.reason == (
        "HTTP 302 (redirect to http://169.254.169.254/latest/meta-data/ not followed)"
    )


def test_a_redirect_loop_stops_after_a_few_hops(instances: Instances) -> None:
    result = probe(
        ProbeSpec(path="/redirect-loop", expected_statuses=((200, 299),)), instances.port
    )
    assert result.status == CheckStatus.FAIL
    assert result.reason.startswith("HTTP 302")


# -- SSRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "host", "why"),
    [
        (CheckKind.HTTP, "169.254.169.254", "cloud metadata address"),
        (CheckKind.HTTP, "169.254.10.1", "link-local"),
        (CheckKind.HTTP, "fe80::1", "link-local"),
        (CheckKind.HTTP, "::ffff:169.254.169.254", "cloud metadata address"),
        (CheckKind.HTTP, "fd00:ec2::254", "cloud metadata address"),
        (CheckKind.HTTP, "metadata.google.internal", "cloud metadata hostname"),
        (CheckKind.TCP, "169.254.169.254", "cloud metadata address"),
        (CheckKind.GRPC, "169.254.169.254", "cloud metadata address"),
        (CheckKind.TLS, "fe80::1", "link-local"),
    ],
)
def test_it_refuses_link_local_and_metadata_addresses(kind: str, host: str, why: str) -> None:
    result = probe(ProbeSpec(kind=kind), 80, host=host)
    assert result.status == CheckStatus.FAIL
    assert result.reason.startswith("refused: ")
    assert why in result.reason


def test_a_name_resolving_to_a_forbidden_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a DNS name that resolves to the metadata address (a rebinding attack); there is
    # no DNS server to run here, so the system resolver's answer is stood in
    async def resolve(self: Any, host: str, port: int = 0, family: Any = 0) -> list[Any]:
        return [
            {
                "hostname": host,
                "host": "169.254.169.254",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    monkeypatch.setattr(ThreadedResolver, "resolve", resolve)
    # when probed
    result = probe(ProbeSpec(), 80, host="innocent.example")
    # then the resolved address is refused before any connection
    assert result.status == CheckStatus.FAIL
    assert "169.254.169.254 is a cloud metadata address" in result.reason


def test_link_local_stays_refused_even_if_an_admin_lists_it(settings: Any) -> None:
    # given an admin who allowed the link-local network along with a private one
    settings.SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS = ["169.254.0.0/16", "10.0.0.0/8"]
    # when probing a link-local address
    result = probe(ProbeSpec(kind=CheckKind.TCP, timeout_seconds=0.2), 9, host="169.254.0.9")
    # then it is refused all the same: the allowance covers loopback and private networks only
    assert result.reason == "refused: 169.254.0.9 is link-local"


# -- TCP ----------------------------------------------------------------------------------


def test_tcp_connect(instances: Instances) -> None:
    assert probe(ProbeSpec(kind=CheckKind.TCP), instances.port).status == CheckStatus.PASS
    closed = probe(ProbeSpec(kind=CheckKind.TCP), free_port())
    assert (closed.status, closed.reason) == (CheckStatus.FAIL, "connection refused")


# -- gRPC ---------------------------------------------------------------------------------


@pytest.fixture
def grpc_health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("payments.Ledger", health_pb2.HealthCheckResponse.NOT_SERVING)
    server.start()
    yield port, servicer
    server.stop(grace=None)


def test_grpc_serving_passes(grpc_health_server: tuple[int, Any]) -> None:
    port, _ = grpc_health_server
    result = probe(ProbeSpec(kind=CheckKind.GRPC), port)
    assert (result.status, result.reason) == (CheckStatus.PASS, "gRPC health: SERVING")


def test_grpc_not_serving_fails(grpc_health_server: tuple[int, Any]) -> None:
    port, _ = grpc_health_server
    result = probe(ProbeSpec(kind=CheckKind.GRPC, grpc_service="payments.Ledger"), port)
    assert (result.status, result.reason) == (CheckStatus.FAIL, "gRPC health: NOT_SERVING")


def test_grpc_unknown_service_and_closed_port_fail(grpc_health_server: tuple[int, Any]) -> None:
    port, _ = grpc_health_server
    unknown = probe(ProbeSpec(kind=CheckKind.GRPC, grpc_service="nope"), port)
    assert unknown.reason == "gRPC health: unknown service 'nope'"
    closed = probe(ProbeSpec(kind=CheckKind.GRPC, timeout_seconds=0.5), free_port())
    assert closed.status == CheckStatus.FAIL


# -- TLS ----------------------------------------------------------------------------------


def make_certificate(tmp_path: Path, days: int) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1 valid `days` more days (negative: expired)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "instance.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"cert{days}.pem", tmp_path / f"key{days}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.mark.parametrize(
    ("days", "status", "reason_start"),
    [
        (90, CheckStatus.PASS, "certificate valid"),
        (5, CheckStatus.WARN, "certificate expires in"),
        (-2, CheckStatus.FAIL, "certificate expired"),
    ],
)
def test_tls_certificate_expiry(tmp_path: Path, days: int, status: str, reason_start: str) -> None:
    # given a TLS server with a certificate the test made
    port, stop = serve_in_thread(web.Application, make_certificate(tmp_path, days))
    try:
        # when its certificate is checked (self-signed: trust is not what is checked)
        result = probe(ProbeSpec(kind=CheckKind.TLS, tls_verify=False, tls_warn_days=14), port)
    finally:
        stop()
    # then expiry decides
    assert result.status == status
    assert result.reason.startswith(reason_start)
    assert result.output["subject"] == "CN=instance.test"


def test_tls_verification_refuses_an_untrusted_certificate(tmp_path: Path) -> None:
    port, stop = serve_in_thread(web.Application, make_certificate(tmp_path, 90))
    try:
        result = probe(ProbeSpec(kind=CheckKind.TLS, tls_verify=True), port)
    finally:
        stop()
    assert result.status == CheckStatus.FAIL
    assert result.reason.startswith("TLS handshake failed")


def test_https_probe_against_the_tls_server(tmp_path: Path) -> None:
    server = Instances()
    port, stop = serve_in_thread(server.app, make_certificate(tmp_path, 90))
    try:
        result = probe(ProbeSpec(scheme=Scheme.HTTPS, tls_verify=False), port)
    finally:
        stop()
    assert result.status == CheckStatus.PASS
