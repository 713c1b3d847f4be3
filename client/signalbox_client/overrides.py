"""The overrides an operator set in Signalbox for this service, as last heard, with their expiry."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FORCED_OPEN = "forced_open"
FORCED_CLOSED = "forced_closed"


@dataclass(frozen=True)
class Forced:
    """One circuit forced open or closed, until `expires_at`."""

    circuit: str
    state: str
    reason: str
    expires_at: datetime
    environment: str | None

    def active(self, now: datetime) -> bool:
        return self.expires_at > now


class Overrides:
    """Thread-safe: the poller replaces the set, breakers read it on every call.

    Expiry is enforced here too, so an override lapses on time even while the control
    plane cannot be reached.
    """

    def __init__(self) -> None:
        self._by_circuit: dict[str, Forced] = {}
        self._lock = threading.Lock()
        self.etag: str | None = None

    def replace(self, documents: list[dict[str, Any]], etag: str | None) -> None:
        chosen: dict[str, Forced] = {}
        for doc in documents:
            try:
                forced = Forced(
                    circuit=str(doc["circuit"]),
                    state=str(doc["state"]),
                    reason=str(doc.get("reason", "")),
                    expires_at=datetime.fromisoformat(str(doc["expires_at"])),
                    environment=doc.get("environment"),
                )
            except (KeyError, ValueError):
                continue
            if forced.state not in (FORCED_OPEN, FORCED_CLOSED):
                continue
            held = chosen.get(forced.circuit)
            # An override for this environment beats one for every environment.
            if held is None or (held.environment is None and forced.environment is not None):
                chosen[forced.circuit] = forced
        with self._lock:
            self._by_circuit = chosen
            self.etag = etag

    def for_circuit(self, name: str) -> Forced | None:
        with self._lock:
            forced = self._by_circuit.get(name)
        if forced is None or not forced.active(datetime.now(UTC)):
            return None
        return forced

    def state_for(self, name: str) -> str | None:
        forced = self.for_circuit(name)
        return forced.state if forced else None

    def active(self) -> list[Forced]:
        now = datetime.now(UTC)
        with self._lock:
            return [f for f in self._by_circuit.values() if f.active(now)]
