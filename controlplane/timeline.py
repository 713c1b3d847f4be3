"""The audit log's filters and pages: newest first, paged by keyset (no COUNT, no OFFSET)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.db.models import Q, QuerySet
from django.http import QueryDict

from controlplane.models import Event

PAGE_SIZE = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class EventFilters:
    """What the Events page is narrowed to; every field empty means everything."""

    team: str = ""
    service: str = ""
    environment: str = ""
    actor: str = ""
    action: str = ""

    @classmethod
    def from_query(cls, params: QueryDict) -> EventFilters:
        return cls(**{name: params.get(name, "").strip()[:200] for name in cls.__annotations__})

    def __bool__(self) -> bool:
        return any(asdict(self).values())

    def as_query(self) -> dict[str, str]:
        return {name: value for name, value in asdict(self).items() if value}

    def apply(self, events: QuerySet[Event]) -> QuerySet[Event]:
        if self.team:
            events = events.filter(team__slug=self.team)
        if self.service:
            events = events.filter(service__slug=self.service)
        if self.environment:
            events = events.filter(environment__slug=self.environment)
        if self.actor:
            events = events.filter(actor_label=self.actor)
        if self.action:
            events = events.filter(action__startswith=self.action)
        return events


@dataclass(frozen=True)
class Cursor:
    """A position in the timeline: an event's time and id (ids break ties in time)."""

    created_at: datetime
    id: int

    @classmethod
    def of(cls, event: Event) -> Cursor:
        return cls(event.created_at, event.pk)

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        micros, _, ident = text.partition("-")
        if not (micros.isdigit() and ident.isdigit()):
            return None
        return cls(_EPOCH + int(micros) * _MICROSECOND, int(ident))

    def __str__(self) -> str:
        # Integer microseconds: exact, unlike a float timestamp, and URL-safe.
        return f"{(self.created_at - _EPOCH) // _MICROSECOND}-{self.id}"

    def newer(self) -> Q:
        return Q(created_at__gt=self.created_at) | Q(created_at=self.created_at, id__gt=self.id)

    def older(self) -> Q:
        return Q(created_at__lt=self.created_at) | Q(created_at=self.created_at, id__lt=self.id)


@dataclass(frozen=True)
class EventPage:
    """One page of the timeline and where the pages around it start."""

    events: list[Event]
    newer: Cursor | None  # show events after this one (None: this is the latest page)
    older: Cursor | None  # show events before this one (None: nothing older)

    @property
    def is_latest(self) -> bool:
        return self.newer is None


def event_page(
    filters: EventFilters,
    *,
    before: Cursor | None = None,
    after: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> EventPage:
    """The page of events older than `before`, newer than `after`, or the latest. One query."""
    events = filters.apply(Event.objects.select_related("team", "service", "environment"))
    if after is not None:
        rows = list(events.filter(after.newer()).order_by("created_at", "id")[: size + 1])
        if len(rows) > size:
            rows = rows[:size][::-1]
            return EventPage(rows, newer=Cursor.of(rows[0]), older=Cursor.of(rows[-1]))
        # Paging back up reached the newest events: show the latest page, which goes live.
        before = None
    if before is not None:
        rows = list(events.filter(before.older()).order_by("-created_at", "-id")[: size + 1])
        newer = Cursor.of(rows[0]) if rows else before
    else:
        rows = list(events.order_by("-created_at", "-id")[: size + 1])
        newer = None
    older = Cursor.of(rows[size - 1]) if len(rows) > size else None
    return EventPage(rows[:size], newer=newer, older=older)


def page_link(filters: EventFilters, **cursor: Cursor | None) -> str:
    """The query string of a page of the timeline under the same filters."""
    query = filters.as_query()
    query.update({name: str(value) for name, value in cursor.items() if value is not None})
    return "?" + urlencode(query) if query else "?"
