"""What an analysis provider is given and returns; a provider never passes on missing data."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deployments.choices import Verdict

if TYPE_CHECKING:
    from deployments.drivers.base import Driver, Target
    from deployments.models import Rollout


@dataclass
class Context:
    """One metric of one rollout at one moment: who is canary, who is stable, and the router."""

    rollout: Rollout
    metric: dict[str, Any]
    stable: tuple[Target, ...]
    canary: tuple[Target, ...]
    driver: Driver | None = None
    baseline: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """A measurement: the value, the threshold it was held to, the verdict and why."""

    verdict: Verdict
    reason: str
    value: float | None = None
    threshold: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None  # replaces the context's baseline when set

    @classmethod
    def no_data(cls, reason: str, **kwargs: Any) -> Result:
        return cls(verdict=Verdict.INCONCLUSIVE, reason=reason, **kwargs)


class AnalysisProvider(ABC):
    """Measures one kind of evidence about the new version."""

    def begin(self, ctx: Context) -> dict[str, Any]:
        """What to remember when the analysis starts (counters to diff against later)."""
        return {}

    @abstractmethod
    def measure(self, ctx: Context) -> Result:
        """One reading; exceptions are turned into an inconclusive result by the caller."""
