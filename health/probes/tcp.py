"""TCP probe: the instance accepts a connection within the timeout."""

from __future__ import annotations

import asyncio
import time

from controlplane.outbound import Refused, aresolve
from health.choices import CheckStatus
from health.probes import ProbeResult
from health.specs import ProbeSpec


async def probe_tcp(spec: ProbeSpec, host: str, port: int) -> ProbeResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            address = (await aresolve(host, port))[0]
            _, writer = await asyncio.open_connection(address, port)
            writer.close()
            await writer.wait_closed()
    except TimeoutError:
        return ProbeResult.failed(f"timeout after {spec.timeout_seconds:g} s", _ms(started))
    except Refused as exc:
        return ProbeResult.failed(str(exc), _ms(started))
    except ConnectionRefusedError:
        return ProbeResult.failed("connection refused", _ms(started))
    except OSError as exc:
        return ProbeResult.failed(f"cannot connect: {exc}", _ms(started))
    latency = _ms(started)
    if spec.max_latency_ms is not None and latency > spec.max_latency_ms:
        return ProbeResult(CheckStatus.WARN, latency, f"slow connect: {latency:.0f} ms")
    return ProbeResult(CheckStatus.PASS, latency, "connected")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
