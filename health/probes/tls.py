"""TLS probe: the handshake succeeds and the certificate is not about to expire."""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime

from cryptography import x509

from controlplane.outbound import Refused, aresolve
from health.choices import CheckStatus
from health.probes import ProbeResult
from health.specs import ProbeSpec


def tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        # Expiry is still read from the presented certificate; only trust is skipped.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def probe_tls(spec: ProbeSpec, host: str, port: int) -> ProbeResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            address = (await aresolve(host, port))[0]
            _, writer = await asyncio.open_connection(
                address,
                port,
                ssl=tls_context(spec.tls_verify),
                server_hostname=host,
            )
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            writer.close()
    except TimeoutError:
        return ProbeResult.failed(f"timeout after {spec.timeout_seconds:g} s", _ms(started))
    except Refused as exc:
        return ProbeResult.failed(str(exc), _ms(started))
    except ssl.SSLError as exc:
        return ProbeResult.failed(f"TLS handshake failed: {exc.reason or exc}", _ms(started))
    except ConnectionRefusedError:
        return ProbeResult.failed("connection refused", _ms(started))
    except OSError as exc:
        return ProbeResult.failed(f"cannot connect: {exc}", _ms(started))
    latency = _ms(started)
    if not der:
        return ProbeResult.failed("no certificate presented", latency)
    return judge_certificate(x509.load_der_x509_certificate(der), spec, latency)


def judge_certificate(cert: x509.Certificate, spec: ProbeSpec, latency_ms: float) -> ProbeResult:
    not_after = cert.not_valid_after_utc
    days_left = (not_after - datetime.now(UTC)).total_seconds() / 86400
    output = {
        "not_after": not_after.isoformat(),
        "days_left": round(days_left, 1),
        "subject": cert.subject.rfc4514_string()[:200],
    }
    if days_left <= 0:
        return ProbeResult(
            CheckStatus.FAIL, latency_ms, f"certificate expired {not_after:%Y-%m-%d}", output
        )
    if days_left < spec.tls_warn_days:
        return ProbeResult(
            CheckStatus.WARN,
            latency_ms,
            f"certificate expires in {days_left:.0f} days ({not_after:%Y-%m-%d})",
            output,
        )
    return ProbeResult(
        CheckStatus.PASS, latency_ms, f"certificate valid {days_left:.0f} more days", output
    )


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
