"""What a public page shows, built in a fixed number of queries whatever its size.

One query each for the page's services, their health, their daily uptime (90 days of
rollups grouped by day in PostgreSQL), the open published incidents (and their
components) and the maintenance windows. Only public fields leave this module: display
names, states, uptime figures, and the operator's public text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from croniter import croniter
from django.core.cache import cache
from django.utils import timezone
from redis.exceptions import RedisError

from catalog.models import Service
from health import rollups
from health.choices import ServiceStatus
from health.models import MaintenanceWindow, ServiceHealth
from statuspage.choices import (
    INDICATOR_RANK,
    MAINTENANCE_DESCRIPTION,
    ComponentStatus,
    IncidentStatus,
    Indicator,
)
from statuspage.models import PublicIncident, StatusPage, StatusPageService

logger = logging.getLogger(__name__)

BAR_DAYS = 90
# A recurring window is announced this long before it starts.
MAINTENANCE_LOOKAHEAD = timedelta(days=7)
# Daily bars: at or above GOOD the day is green, at or above FAIR amber, below it red.
GOOD_UPTIME = 99.9
FAIR_UPTIME = 99.0
# Past days' bars are read from the cache for this long: summing 90 days of rollups for
# 200 services took ~0.4 s (bench/status_page.py), today's part alone a few ms. A batch
# that lands after midnight for the day before shows within this time.
PAST_DAYS_CACHE_SECONDS = 15 * 60

# Our service states in Statuspage's vocabulary. Unknown (no probe result yet) has no
# word there; "degraded performance" says we cannot vouch for it, without an outage.
COMPONENT_OF = {
    ServiceStatus.HEALTHY: ComponentStatus.OPERATIONAL,
    ServiceStatus.DEGRADED: ComponentStatus.PARTIAL_OUTAGE,
    ServiceStatus.DOWN: ComponentStatus.MAJOR_OUTAGE,
    ServiceStatus.UNKNOWN: ComponentStatus.DEGRADED_PERFORMANCE,
}


@dataclass(frozen=True)
class Day:
    """One uptime bar: a UTC day and its share of probes that did not fail."""

    day: date
    uptime: float | None

    @property
    def level(self) -> str:
        if self.uptime is None:
            return "none"
        if self.uptime >= GOOD_UPTIME:
            return "good"
        return "fair" if self.uptime >= FAIR_UPTIME else "poor"

    @property
    def label(self) -> str:
        figure = "no data" if self.uptime is None else f"{_percent(self.uptime)} uptime"
        return f"{self.day:%b} {self.day.day}, {self.day.year}: {figure}"


@dataclass
class Component:
    entry: StatusPageService
    health: str
    status: str
    updated_at: datetime
    days: list[Day] = field(default_factory=list)
    team_name: str = ""

    @property
    def id(self) -> str:
        return str(self.entry.pk)

    @property
    def name(self) -> str:
        return self.entry.display_name

    @property
    def uptime(self) -> float | None:
        """Over the days with data."""
        known = [d.uptime for d in self.days if d.uptime is not None]
        return round(sum(known) / len(known), 3) if known else None

    @property
    def uptime_text(self) -> str:
        return "no data" if self.uptime is None else _percent(self.uptime)


@dataclass
class Maintenance:
    id: str
    name: str
    status: str  # scheduled | in_progress
    scheduled_for: datetime
    scheduled_until: datetime
    components: list[Component]


@dataclass
class PageView:
    page: StatusPage
    components: list[Component]
    incidents: list[PublicIncident]
    maintenances: list[Maintenance]
    indicator: str
    description: str
    updated_at: datetime
    day_range: tuple[date, date] | None = None

    @property
    def groups(self) -> list[tuple[str, list[Component]]]:
        grouped: dict[str, list[Component]] = {}
        for c in self.components:
            grouped.setdefault(c.entry.group, []).append(c)
        return list(grouped.items())

    def components_of(self, incident: PublicIncident) -> list[Component]:
        wanted = {e.pk for e in incident.entries.all()}
        return [c for c in self.components if c.entry.pk in wanted]


def published_page(slug: str) -> StatusPage | None:
    return (
        StatusPage.objects.select_related("environment", "team")
        .filter(slug=slug, published=True)
        .first()
    )


def build(page: StatusPage, now: datetime | None = None, bars: bool = True) -> PageView:
    """Everything the page and its JSON show; `bars=False` skips the 90-day uptime query."""
    now = now or timezone.now()
    entries = list(page.entries.select_related("service"))
    service_ids = [e.service_id for e in entries]
    healths = {
        h.service_id: h
        for h in ServiceHealth.objects.filter(
            service_id__any=service_ids, environment_id=page.environment_id
        )
    }
    windows = _windows(page, service_ids)
    maintained = {w.service_id for w in windows if w.is_active_at(now)}
    days = _daily_uptime(page, entries, now) if bars else {}
    today = now.astimezone(UTC).date()
    span = [today - timedelta(days=n) for n in range(BAR_DAYS - 1, -1, -1)]
    components = []
    for entry in entries:
        health = healths.get(entry.service_id)
        state = health.status if health else ServiceStatus.UNKNOWN
        status = (
            ComponentStatus.UNDER_MAINTENANCE
            if entry.service_id in maintained
            else COMPONENT_OF[ServiceStatus(state)]
        )
        per_day = days.get(entry.service_id, {})
        components.append(
            Component(
                entry=entry,
                health=state,
                status=status,
                updated_at=health.since if health else page.updated_at,
                days=[Day(d, per_day.get(d)) for d in span] if bars else [],
            )
        )
    if page.show_team_names:
        _attach_teams(components)
    incidents = list(
        page.incidents.exclude(status=IncidentStatus.RESOLVED).prefetch_related("entries")
    )
    maintenances = _maintenances(page, windows, components, now)
    indicator = _indicator(components, incidents)
    description = Indicator(indicator).label
    if indicator == Indicator.NONE and any(m.status == "in_progress" for m in maintenances):
        description = MAINTENANCE_DESCRIPTION
    stamps = [page.updated_at, *(c.updated_at for c in components)]
    stamps += [i.updated_at for i in incidents]
    return PageView(
        page=page,
        components=components,
        incidents=incidents,
        maintenances=maintenances,
        indicator=indicator,
        description=description,
        updated_at=max(stamps),
        day_range=(span[0], span[-1]) if bars else None,
    )


def _attach_teams(components: list[Component]) -> None:
    # One query over the page's services, not entry.service.team per service.
    ids = {c.entry.service_id for c in components}
    names = dict(Service.objects.filter(id__any=list(ids)).values_list("id", "team__name"))
    for c in components:
        c.team_name = names.get(c.entry.service_id, "")


def _windows(page: StatusPage, service_ids: list[int]) -> list[MaintenanceWindow]:
    return [
        w
        for w in MaintenanceWindow.objects.filter(service_id__any=service_ids)
        if w.covers(page.environment_id)
    ]


def _daily_uptime(
    page: StatusPage, entries: list[StatusPageService], now: datetime
) -> dict[int, dict[date, float]]:
    """{service id: {day: uptime %}}: past days from the cache where it has them (they
    change only when a late batch lands), today always from the database."""
    today = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), UTC)
    start = today - timedelta(days=BAR_DAYS - 1)
    keys = {e.service_id: _past_key(e, page.environment_id, today) for e in entries}
    cached = _cached(list(keys.values()))
    days = {sid: dict(cached[key]) for sid, key in keys.items() if key in cached}
    missing = [sid for sid in keys if sid not in days]
    if missing:
        past = _uptime_by_day(missing, page.environment_id, start, today)
        try:
            cache.set_many(
                {keys[sid]: past.get(sid, {}) for sid in missing}, timeout=PAST_DAYS_CACHE_SECONDS
            )
        except RedisError:
            logger.warning("status page %s: could not cache its past days", page.slug)
        for sid in missing:
            days[sid] = past.get(sid, {})
    for sid, figures in _uptime_by_day(list(keys), page.environment_id, today, None).items():
        days[sid].update(figures)
    return days


def _cached(keys: list[str]) -> dict[str, dict[date, float]]:
    """The cached past days; none when Redis is away (the page then sums them itself)."""
    try:
        found: dict[str, dict[date, float]] = cache.get_many(keys)
    except RedisError:
        logger.warning("status pages: the cache is unavailable; reading past days from rollups")
        return {}
    return found


def _past_key(entry: StatusPageService, environment_id: int, today: datetime) -> str:
    # The service's creation time keeps a recreated service (same id after a database
    # reset) from reading the old one's bars.
    born = entry.service.created_at.timestamp()
    return f"statuspage:days:{entry.service_id}:{born}:{environment_id}:{today:%Y%m%d}"


def _uptime_by_day(
    service_ids: list[int], environment_id: int, since: datetime, until: datetime | None
) -> dict[int, dict[date, float]]:
    counts = rollups.counts_by_day(service_ids, environment_id, since, until)
    days: dict[int, dict[date, float]] = {}
    for (service_id, day), (probes, failed) in counts.items():
        if probes:
            days.setdefault(service_id, {})[day] = round(100.0 * (probes - failed) / probes, 3)
    return days


def _maintenances(
    page: StatusPage, windows: list[MaintenanceWindow], components: list[Component], now: datetime
) -> list[Maintenance]:
    by_service = {c.entry.service_id: c for c in components}
    found = []
    for window in windows:
        span = _next_span(window, now)
        if span is None:
            continue
        starts, ends = span
        found.append(
            Maintenance(
                id=f"maintenance-{window.pk}",
                name=(window.reason if page.show_maintenance_reasons and window.reason else "")
                or "Scheduled maintenance",
                status="in_progress" if starts <= now < ends else "scheduled",
                scheduled_for=starts,
                scheduled_until=ends,
                components=[by_service[window.service_id]],
            )
        )
    return sorted(found, key=lambda m: (m.scheduled_for, m.id))


def _next_span(window: MaintenanceWindow, now: datetime) -> tuple[datetime, datetime] | None:
    """The window's current or next occurrence, if it is in progress or soon enough."""
    if window.is_recurring:
        length = timedelta(minutes=window.duration_minutes or 0)
        last = window.last_start_before(now)
        if now < last + length:
            return last, last + length
        local = now.astimezone(last.tzinfo)
        upcoming: datetime = croniter(window.cron, local).get_next(datetime)
        if upcoming - now > MAINTENANCE_LOOKAHEAD:
            return None
        return upcoming, upcoming + length
    if window.starts_at is None or window.ends_at is None or window.ends_at <= now:
        return None
    return window.starts_at, window.ends_at


def _indicator(components: list[Component], incidents: list[PublicIncident]) -> str:
    statuses = [c.status for c in components if c.status != ComponentStatus.UNDER_MAINTENANCE]
    indicator = Indicator.NONE
    if ComponentStatus.MAJOR_OUTAGE in statuses:
        every = all(s == ComponentStatus.MAJOR_OUTAGE for s in statuses)
        indicator = Indicator.CRITICAL if every else Indicator.MAJOR
    elif any(s != ComponentStatus.OPERATIONAL for s in statuses):
        indicator = Indicator.MINOR
    for incident in incidents:
        if INDICATOR_RANK[Indicator(incident.impact)] > INDICATOR_RANK[indicator]:
            indicator = Indicator(incident.impact)
    return str(indicator)


def _percent(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"
