"""Faults an operator injects into an instance, and the JSON that sets them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any


class HealthStatus(StrEnum):
    """draft-inadarei-api-health-check's statuses."""

    PASS = "pass"  # noqa: S105 (a health status, not a password)
    WARN = "warn"
    FAIL = "fail"


# A version containing this marker misbehaves by itself, so a canary of it really fails.
BAD_VERSION_MARKER = "bad"
BAD_VERSION_ERROR_RATE = 30.0  # percent of business calls answered 500
BAD_VERSION_LATENCY_MS = 300  # added to every business call


@dataclass(frozen=True)
class Faults:
    """What is wrong with an instance on purpose. The defaults mean: nothing."""

    health: HealthStatus | None = None  # forces the /health status when set
    error_rate: float = 0.0  # percent of /api calls answered 500
    latency_ms: int = 0  # added before answering anything but the fault endpoint
    hang: bool = False  # accept requests and never answer them
    down: bool = False  # stop listening on the port
    leak_mb_per_min: float = 0.0  # really allocate this much memory every minute
    ignore_drain: bool = False  # told it is draining, never say it is ready (a liar)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["health"] = self.health.value if self.health else None
        return data

    @property
    def active(self) -> bool:
        return self != Faults()


class FaultError(ValueError):
    """Bad fault JSON; `fields` maps each bad field to its reasons."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()))


def apply_update(current: Faults, update: Any) -> Faults:
    """A partial update: only the given fields change; `"reset": true` first clears all."""
    if not isinstance(update, dict):
        raise FaultError({"non_field_errors": ["expected a JSON object"]})
    errors: dict[str, list[str]] = {}
    known = {"reset", *Faults.__dataclass_fields__}
    for key in update.keys() - known:
        errors[key] = [f"unknown field; expected one of {', '.join(sorted(known))}"]
    reset = update.get("reset", False)
    if not isinstance(reset, bool):
        errors["reset"] = ["must be true or false"]
    changes: dict[str, Any] = {}
    for key, parse in _PARSERS.items():
        if key in update:
            try:
                changes[key] = parse(update[key])
            except ValueError as exc:
                errors[key] = [str(exc)]
    if errors:
        raise FaultError(errors)
    return replace(Faults() if reset else current, **changes)


def _health(value: Any) -> HealthStatus | None:
    if value is None:
        return None
    try:
        return HealthStatus(value)
    except ValueError:
        raise ValueError("must be pass, warn, fail or null") from None


def _percent(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ValueError("must be a number from 0 to 100")
    return float(value)


def _millis(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 600_000:
        raise ValueError("must be an integer number of milliseconds from 0 to 600000")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _leak(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 10_000:
        raise ValueError("must be a number of MB per minute from 0 to 10000")
    return float(value)


_PARSERS = {
    "health": _health,
    "error_rate": _percent,
    "latency_ms": _millis,
    "hang": _flag,
    "down": _flag,
    "leak_mb_per_min": _leak,
    "ignore_drain": _flag,
}


def is_bad_version(version: str) -> bool:
    return BAD_VERSION_MARKER in version.lower()
