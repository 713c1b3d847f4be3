"""Probes: HTTP, TCP, gRPC and TLS expiry, each turning one attempt into a ProbeResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from health.choices import CheckStatus


@dataclass
class ProbeResult:
    """The verdict of one probe: pass, warn or fail, how long it took, and why."""

    status: str
    latency_ms: float
    reason: str = ""
    output: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, reason: str, latency_ms: float, **output: Any) -> ProbeResult:
        return cls(CheckStatus.FAIL, latency_ms, reason[:500], dict(output))
