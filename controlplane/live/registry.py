"""Renderers: what each event changes on the pages, rendered once and pushed to its topic.

Apps register renderers in their `<app>/live.py` modules (imported on the first broadcast);
each returns `(topic, html)` pairs, `Lazy` fragments or coalesced `Tile`s. Fragments of
topics no web process watches are skipped, unrendered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.utils.module_loading import autodiscover_modules

from controlplane.live.coalesce import push_coalesced, render_and_push
from controlplane.live.wire import push, watched
from controlplane.models import Event

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tile:
    """A fragment showing current state: rendered at most once per (topic, key) per window."""

    topic: str
    key: str
    render: Callable[[], str]


@dataclass(frozen=True)
class Lazy:
    """A fragment of something that happens once (a timeline row), rendered only when needed.

    `render` is called once, and only if some page watches `topic`.
    """

    topic: str
    render: Callable[[], str]


# (topic, html) pairs are pushed as they are (already rendered).
Fragment = tuple[str, str] | Lazy | Tile
Renderer = Callable[[Event], Iterable[Fragment]]
_renderers: list[tuple[str, Renderer]] = []
_discovered = False


# The prefix every action starts with: a renderer registered for it sees every event.
EVERY_EVENT = ""


def renders(action_prefix: str) -> Callable[[Renderer], Renderer]:
    """Register a renderer for events whose action starts with `action_prefix` ("" for all)."""

    def register(fn: Renderer) -> Renderer:
        _renderers.append((action_prefix, fn))
        return fn

    return register


def broadcast(event: Event | int) -> None:
    """Render each fragment an event changes once, and push it to its topic.

    `event` is the committed row (or its id, loaded here). Fragments of topics no page
    watches are dropped before they are rendered: a page that opens later renders the
    current state itself.
    """
    _discover()
    if isinstance(event, int):
        found = (
            Event.objects.select_related("team", "service", "environment").filter(pk=event).first()
        )
        if found is None:
            return
        event = found
    event_id = event.pk
    fragments: list[Fragment] = []
    for prefix, render in _renderers:
        if not event.action.startswith(prefix):
            continue
        try:
            fragments.extend(render(event))
        except Exception:
            # One broken renderer must not keep the other tiles from updating.
            logger.exception("live renderer %s failed for event %s", render.__name__, event_id)
    if not fragments:
        return
    looked_at = watched(_topic_of(fragment) for fragment in fragments)
    for fragment in fragments:
        if _topic_of(fragment) not in looked_at:
            continue
        if isinstance(fragment, Tile):
            push_coalesced(fragment.topic, fragment.key, fragment.render)
        elif isinstance(fragment, Lazy):
            render_and_push(fragment.topic, fragment.render)
        else:
            push(*fragment)


def _topic_of(fragment: Fragment) -> str:
    return fragment.topic if isinstance(fragment, Tile | Lazy) else fragment[0]


def _discover() -> None:
    global _discovered
    if not _discovered:
        autodiscover_modules("live")
        _discovered = True

