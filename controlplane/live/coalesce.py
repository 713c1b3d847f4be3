"""Coalescing: a burst of changes to one tile costs two renders per window, in every process.

The first change to (topic, key) renders at once and opens a window shared through Redis;
changes during the window mark it dirty, and its owner renders once more when it closes.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

from django.db import close_old_connections, connections

from controlplane import redis as redis_clients
from controlplane.live.wire import push

logger = logging.getLogger(__name__)

# One update per tile per window: short enough to feel instant, long enough to fold a
# burst (a rollout step touching every instance) into one render.
COALESCE_WINDOW_SECONDS = 0.25
# A window's owner that died leaves its key behind; after this it is free again.
_WINDOW_TTL_MS = int(COALESCE_WINDOW_SECONDS * 4000)
_DIRTY_TTL_MS = 60_000


# KEYS: window, dirty. ARGV: owner token, window ttl ms, dirty ttl ms.
# 1: the caller opened the window and renders now; 0: a window is open, its owner will
# render once more when it closes.
_OPEN_WINDOW = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
return 0
"""
# 1: changes arrived during the window: render again and keep the window open another
# round; 0: nothing new, the window is closed.
_CLOSE_WINDOW = """
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


def push_coalesced(
    topic: str,
    key: str,
    render: Callable[[], str],
    window: float = COALESCE_WINDOW_SECONDS,
) -> bool:
    """Push `render()` to `topic` now, or fold this change into the window already open.

    The first change to (topic, key) renders at once and opens a window shared by every
    process through Redis; changes during the window only mark it dirty, and when it
    closes its owner renders once more, reading the state as it is by then. So a burst of
    any size costs two renders per window, and the last state always reaches the page.
    `render` must read current state itself (it may run up to `window` seconds later, in
    another thread). Returns True when this call rendered.
    """
    window_key = f"signalbox:live:window:{topic}:{key}"
    keys = [window_key, window_key + ":dirty"]
    token = uuid.uuid4().hex
    window_ms = int(window * 1000)
    ttl_ms = max(_WINDOW_TTL_MS, window_ms * 4)
    if not redis_clients.client().eval(_OPEN_WINDOW, 2, *keys, token, ttl_ms, _DIRTY_TTL_MS):
        return False
    render_and_push(topic, render)

    def close() -> None:
        if redis_clients.client().eval(_CLOSE_WINDOW, 2, *keys, token, ttl_ms):
            render_and_push(topic, render)
            _closer.later(window, close)

    _closer.later(window, close)
    return True


def render_and_push(topic: str, render: Callable[[], str]) -> None:
    try:
        push(topic, render())
    except Exception:
        logger.exception("live render for topic %s failed", topic)


class _WindowCloser:
    """One thread per process that closes coalescing windows when they are due."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), fn))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="signalbox-live-windows", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def drain(self, within: float = 2.0) -> None:
        """Run pending closes now (at exit, so a short command's last change shows).

        Bounded in time: other processes may keep marking a window dirty, and each close
        that renders arms another.
        """
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self._cond:
                if not self._due:
                    return
                _, _, fn = heapq.heappop(self._due)
            self._call(fn)

    def reset_after_fork(self) -> None:
        # The child has no closer thread and maybe a lock held by a thread that is gone.
        self._due = []
        self._cond = threading.Condition()
        self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due:
                    # Between bursts, give the database connection back (tests drop the
                    # database at the end, and idle connections cost the server memory).
                    connections.close_all()
                    self._cond.wait()
                due, _, fn = self._due[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._due)
            self._call(fn)

    @staticmethod
    def _call(fn: Callable[[], None]) -> None:
        close_old_connections()
        try:
            fn()
        except Exception:
            logger.exception("closing a live coalescing window failed")


_closer = _WindowCloser()
os.register_at_fork(after_in_child=_closer.reset_after_fork)


# At exit the closer thread (a daemon) is still alive but about to stop: run what it holds.
atexit.register(_closer.drain)

