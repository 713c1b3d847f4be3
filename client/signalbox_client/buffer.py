"""A bounded, thread-safe buffer of reports that drops the oldest when full, and counts it."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any


class ReportBuffer:
    """Appending never blocks on the network and never grows past `capacity`.

    When the control plane is away the newest reports matter most (the server ignores
    old ones anyway), so a full buffer drops from the old end and counts each drop.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, item: dict[str, Any]) -> None:
        with self._lock:
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)

    def peek(self, count: int) -> list[dict[str, Any]]:
        """The oldest `count` items, left in place until `discard` confirms they were sent."""
        with self._lock:
            return [self._items[i] for i in range(min(count, len(self._items)))]

    def discard(self, items: list[dict[str, Any]]) -> None:
        """Remove these items if still at the front (some may have been dropped meanwhile)."""
        with self._lock:
            for item in items:
                if self._items and self._items[0] is item:
                    self._items.popleft()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
