"""gRPC probe: grpc.health.v1 Health/Check; SERVING passes, anything else fails."""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from controlplane.outbound import Refused, aresolve
from health.choices import CheckStatus, Scheme
from health.probes import ProbeResult
from health.specs import ProbeSpec

SERVING = health_pb2.HealthCheckResponse.SERVING


async def probe_grpc(spec: ProbeSpec, host: str, port: int) -> ProbeResult:
    started = time.perf_counter()
    try:
        address = (await aresolve(host, port))[0]
    except Refused as exc:
        return ProbeResult.failed(str(exc), _ms(started))
    except OSError as exc:
        return ProbeResult.failed(f"cannot resolve: {exc}", _ms(started))
    # Connect to the checked address (not the name again), keeping the name as :authority.
    target = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    options = [("grpc.default_authority", f"{host}:{port}")]
    channel = (
        grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
        if spec.scheme == Scheme.HTTPS
        else grpc.aio.insecure_channel(target, options=options)
    )
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=spec.grpc_service)
        response = await stub.Check(request, timeout=spec.timeout_seconds)
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            reason = f"timeout after {spec.timeout_seconds:g} s"
        elif code == grpc.StatusCode.NOT_FOUND:
            reason = f"gRPC health: unknown service {spec.grpc_service!r}"
        else:
            reason = f"gRPC {code.name}: {exc.details() or ''}".strip()
        return ProbeResult.failed(reason, _ms(started), grpc_code=code.name)
    finally:
        await channel.close()
    latency = _ms(started)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    if response.status != SERVING:
        return ProbeResult.failed(f"gRPC health: {name}", latency, grpc_status=name)
    if spec.max_latency_ms is not None and latency > spec.max_latency_ms:
        return ProbeResult(
            CheckStatus.WARN, latency, f"slow: {latency:.0f} ms", {"grpc_status": name}
        )
    return ProbeResult(CheckStatus.PASS, latency, "gRPC health: SERVING", {"grpc_status": name})


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
