"""Turns on one shared engine for the live sessions decoding on it.

A decode that makes text final (end of speech, the end of a stream) waits for its turn and goes
before every other. A partial update, and a final decoded ahead in a pause (AHEAD, counted
apart), is opportunistic: it runs only when a turn is free and nobody waits, unless a partial's
session went too long without one, in which case it queues behind the finals, in arrival order.
Under load partials therefore thin out first, while every final still arrives; no session waits
behind another's partials.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FINAL, AHEAD, PARTIAL = 0, 1, 2  # priorities: lower goes first


class EngineTurns:
    """A fair, prioritised semaphore of `slots` turns (the decodes the engine runs at once):
    `turn(priority, wait)` yields whether a turn was granted."""

    def __init__(self, slots: int = 1) -> None:
        self.slots = max(1, slots)
        self._cond = threading.Condition()
        self._running = 0
        self._queue: list[tuple[int, int]] = []  # (priority, ticket): a heap
        self._tickets = itertools.count()
        self.granted = {FINAL: 0, AHEAD: 0, PARTIAL: 0}
        self.skipped = 0  # partial updates given up because the engine was in use

    @property
    def waiting(self) -> int:
        """Sessions queued for the engine now."""
        return len(self._queue)

    def acquire(self, priority: int, wait: bool) -> bool:
        """Take the engine; with `wait` False only if it is free and nobody queues."""
        with self._cond:
            if not wait:
                if self._running >= self.slots or self._queue:
                    self.skipped += 1
                    return False
                return self._grant(priority)
            entry = (priority, next(self._tickets))
            heapq.heappush(self._queue, entry)
            while self._running >= self.slots or self._queue[0] != entry:
                self._cond.wait()
            heapq.heappop(self._queue)
            return self._grant(priority)

    def _grant(self, priority: int) -> bool:
        self._running += 1
        self.granted[priority] += 1
        return True

    def release(self) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    @contextmanager
    def turn(self, priority: int, wait: bool) -> Iterator[bool]:
        granted = self.acquire(priority, wait)
        try:
            yield granted
        finally:
            if granted:
                self.release()
