"""Is an environment frozen now, by which window, and until when (one-off and recurring)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from catalog.models import Environment
from deployments.models import FreezeWindow, RecurringFreezeWindow
from deployments.schedule import local_label, utc_iso


@dataclass(frozen=True)
class Freeze:
    """One window covering an instant: what it is, why, and when it ends."""

    environment: Environment
    kind: str  # "one-off" or "recurring"
    window_id: int
    name: str
    reason: str
    starts_at: datetime
    ends_at: datetime
    timezone: str = "UTC"
    schedule: str = ""

    @property
    def label(self) -> str:
        if self.kind == "recurring":
            return f"recurring freeze window '{self.name}' ({self.schedule})"
        return f"one-off freeze window #{self.window_id}"

    @property
    def ends_utc(self) -> str:
        return utc_iso(self.ends_at)

    @property
    def ends_local(self) -> str:
        return local_label(self.ends_at, self.timezone)

    @property
    def until(self) -> str:
        """'2025-03-31T06:00:00Z (Mon 2025-03-31 08:00 CEST, Europe/Berlin)'."""
        return f"{self.ends_utc} ({self.ends_local})"

    def sentence(self) -> str:
        return (
            f"{self.environment.slug} is frozen until {self.until} by the {self.label}: "
            f"{self.reason}"
        )


def freezes_at(
    environments: Iterable[Environment] | None = None, at: datetime | None = None
) -> dict[int, Freeze]:
    """Per environment id, the window freezing it at `at` (now), the latest-ending if several.

    Two queries whatever the number of environments: the one-off windows covering `at`,
    and every recurring window (their occurrences are computed here, in their time zones).
    """
    at = at or timezone.now()
    one_off = FreezeWindow.objects.select_related("environment").filter(
        starts_at__lte=at, ends_at__gt=at
    )
    recurring = RecurringFreezeWindow.objects.select_related("environment")
    if environments is not None:
        ids = [e.pk for e in environments]
        one_off = one_off.filter(environment_id__in=ids)
        recurring = recurring.filter(environment_id__in=ids)
    found: list[Freeze] = [
        Freeze(
            environment=w.environment,
            kind="one-off",
            window_id=w.pk,
            name=f"#{w.pk}",
            reason=w.reason,
            starts_at=w.starts_at,
            ends_at=w.ends_at,
        )
        for w in one_off
    ]
    for window in recurring:
        occurrence = window.covering(at)
        if occurrence is not None:
            found.append(
                Freeze(
                    environment=window.environment,
                    kind="recurring",
                    window_id=window.pk,
                    name=window.name,
                    reason=window.reason,
                    starts_at=occurrence[0],
                    ends_at=occurrence[1],
                    timezone=window.timezone,
                    schedule=window.schedule,
                )
            )
    latest: dict[int, Freeze] = {}
    for freeze in found:
        current = latest.get(freeze.environment.pk)
        if current is None or freeze.ends_at > current.ends_at:
            latest[freeze.environment.pk] = freeze
    return latest


def freeze_of(environment: Environment, at: datetime | None = None) -> Freeze | None:
    """The window freezing `environment` at `at` (now), or None."""
    return freezes_at([environment], at).get(environment.pk)
