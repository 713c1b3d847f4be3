"""Router drift: what is wanted of each traffic router, compared with what it holds, and
re-applied where the two differ.

Level-triggered, like the rest of the reconciler. A router can lose what a rollout set
(HAProxy restarted from its config file: servers added at runtime gone, weights back to
the file's; a person's `set weight`; an ALB rule edited in the console) while the rollout
still says 20 %. Every pass:

1. asks each registered source what it wants of which route (`@wanted_state`: active
   rollouts here; another app, such as scaling's drains, registers its own);
2. claims each router those wishes touch (an atomic UPDATE on its due time, so of two
   workers one observes a router per pass);
3. reads the whole router once (`Driver.observe`) and compares it with the wishes merged;
4. only if something differs: holds every source of a differing pool (a row lock, SKIP
   LOCKED, so a rollout step under way is never raced), reads again under the hold,
   repairs what still differs (`Driver.repair`, absolute) and lets each source say so.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from deployments.drivers.base import (
    NO_TRAFFIC,
    Difference,
    Driver,
    DriverError,
    Member,
    Observed,
    Pool,
)
from deployments.models import TrafficRoute, TrafficRouter

logger = logging.getLogger(__name__)

# The beat asks every 2 s (controlplane/celery.py); a router is claimed at most this often,
# a little less than the tick so a tick that runs early does not skip a pass.
RECONCILE_EVERY = timedelta(seconds=1.5)


class Wanted(ABC):
    """One source's wish for one route: the pools it needs as the route's driver names
    them, and how to hold the source still while it is repaired and to report the repair."""

    def __init__(self, route: TrafficRoute, driver: Driver, pools: dict[str, Pool]) -> None:
        self.route = route
        self.driver = driver
        self.pools = pools

    @abstractmethod
    def hold(self) -> bool:
        """In the repair's transaction: lock what this wish comes from. False when that
        changed since the wish was read, or is busy (the next pass looks again)."""

    @abstractmethod
    def repaired(self, differences: list[Difference]) -> None:
        """In the same transaction: record and announce what was re-applied for it."""


WantedSource = Callable[[], Iterable[Wanted]]
SOURCES: dict[str, WantedSource] = {}


def wanted_state(name: str) -> Callable[[WantedSource], WantedSource]:
    """Register a source of wanted router state under `name` (registering again replaces)."""

    def register(source: WantedSource) -> WantedSource:
        SOURCES[name] = source
        return source

    return register


@dataclass
class Report:
    """What one pass did, for the task's return value, logs and tests."""

    observed: int = 0
    repaired: dict[str, list[Difference]] = field(default_factory=dict)  # router name -> fixes
    errors: dict[str, str] = field(default_factory=dict)  # router name -> why it was not read


def reconcile_routers(now: datetime | None = None) -> Report:
    """One pass over every router something is wanted of."""
    report = Report()
    for router_id, wishes in collect().items():
        if not claim(router_id, now or timezone.now()):
            continue  # another worker has this router's pass
        name = wishes[0].route.router.name
        report.observed += 1
        try:
            fixed = reconcile_router(wishes)
        except DriverError as exc:
            logger.warning("router %s (id %s): drift not reconciled: %s", name, router_id, exc)
            report.errors[name] = str(exc)
            continue
        if fixed:
            report.repaired[name] = fixed
    return report


def collect() -> dict[int, list[Wanted]]:
    """Every source's wishes, by router id; a source that breaks is logged and skipped."""
    found: dict[int, list[Wanted]] = {}
    for name, source in SOURCES.items():
        try:
            wishes = list(source())
        except Exception:
            logger.exception("wanted router state from %s could not be read", name)
            continue
        for wish in wishes:
            found.setdefault(wish.route.router_id, []).append(wish)
    return found


def claim(router_id: int, now: datetime) -> bool:
    """Take this router's pass if it is due; False when another worker took it first."""
    due = Q(reconcile_due_at__isnull=True) | Q(reconcile_due_at__lte=now)
    taken = TrafficRouter.objects.filter(due, pk=router_id).update(
        reconcile_due_at=now + RECONCILE_EVERY
    )
    return taken == 1


def reconcile_router(wishes: list[Wanted]) -> list[Difference]:
    """Observe one router, and repair what differs from the wishes; the repairs made."""
    observer = wishes[0].driver
    merged = merge(wishes)
    if not compare(merged, observer.observe(merged)):
        return []
    with transaction.atomic():
        busy = {pool for wish in wishes if not wish.hold() for pool in wish.pools}
        held = [wish for wish in wishes if not busy & wish.pools.keys()]
        if not held:
            return []
        merged = merge(held)
        # Read again under the hold: a pass that ran meanwhile may have repaired it already.
        differences = compare(merged, observer.observe(merged))
        done: set[str] = set()
        for wish in held:
            pools = wish.pools.keys() - done
            fixes = [d for d in differences if d.pool in pools]
            if fixes:  # a pool two wishes share is repaired once, by the first
                wish.driver.repair(fixes, {pool: merged[pool] for pool in pools})
            done |= pools
        for wish in held:
            mine = [d for d in differences if d.pool in wish.pools]
            if mine:
                wish.repaired(mine)
    return differences


def merge(wishes: Iterable[Wanted]) -> dict[str, Pool]:
    """Every wish's pools as one: a member two wishes name keeps the first weight given and
    serves only if both say so (a drain beats a weight); a pool is exclusive if any says."""
    merged: dict[str, Pool] = {}
    for wish in wishes:
        for name, pool in wish.pools.items():
            into = merged.setdefault(name, Pool(exclusive=False))
            into.exclusive = into.exclusive or pool.exclusive
            for key, member in pool.members.items():
                before = into.members.get(key)
                into.members[key] = member if before is None else _both(before, member)
    return merged


def _both(first: Member, second: Member) -> Member:
    weight = first.weight if first.weight is not None else second.weight
    return Member(weight=weight, serving=first.serving and second.serving)


def compare(wanted: dict[str, Pool], observed: Observed) -> list[Difference]:
    """Each member not as wanted; in an exclusive pool, each other member taking traffic."""
    differences = []
    for name, pool in wanted.items():
        held = observed.get(name, {})
        for key, want in pool.members.items():
            have = held.get(key)
            if not satisfied(want, have):
                differences.append(Difference(name, key, want, have))
        if pool.exclusive:
            differences += [
                Difference(name, key, NO_TRAFFIC, have)
                for key, have in held.items()
                if key not in pool.members and have.takes_traffic
            ]
    return differences


def satisfied(want: Member, have: Member | None) -> bool:
    """A member that should take no traffic is fine absent, at weight 0 or drained; one that
    should take traffic must be there, serving, at its weight (when it has one)."""
    if not want.takes_traffic:
        return have is None or not have.takes_traffic
    return have is not None and have.serving and (want.weight is None or have.weight == want.weight)
