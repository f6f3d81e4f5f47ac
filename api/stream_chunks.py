"""Lossless microphone streaming through Gradio's `.stream()` events.

Gradio keeps one pending input per streaming event: a chunk POSTed to `/stream/{event_id}`
before the handler took the previous one replaces it. The browser posts a chunk every 0.1 s
(its audio component fixes that interval) as soon as the chunk's upload ends, so on a busy
machine two posts often land together: measured here, 118 chunks posted and 87 handled, a
quarter of the speech lost. `OrderedChunksMiddleware` holds each chunk POST of a session until
the handler has taken the session's previous chunk (the handler calls `ChunkGate.taken`), so
every chunk is handled, in order.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import defaultdict
from typing import Any

STREAM_POST = re.compile(r"/stream/[0-9a-f]+/?$")
WAIT_SECONDS = 3.0  # a chunk whose predecessor was never handled (the stream ended) goes on


class ChunkGate:
    """Counts, per browser session, the chunks let through and the chunks handled."""

    def __init__(self, wait_seconds: float = WAIT_SECONDS) -> None:
        self.wait_seconds = wait_seconds
        self._guard = threading.Lock()  # `taken` runs on the handler's worker thread
        self._posted: defaultdict[str, int] = defaultdict(int)
        self._taken: defaultdict[str, int] = defaultdict(int)
        self._turns: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def taken(self, session: str | None) -> None:
        """The handler took one chunk of `session` that came through `/stream/` (not the chunk
        that started the event: that one comes with the event's own request)."""
        if session:
            with self._guard:
                self._taken[session] += 1

    def forget(self, session: str) -> None:
        with self._guard:
            self._posted.pop(session, None)
            self._taken.pop(session, None)
        self._turns.pop(session, None)

    def _pending(self, session: str) -> bool:
        with self._guard:
            return self._posted[session] > self._taken[session]

    async def admit(self, session: str) -> None:
        """Wait (in arrival order) until the session's previous chunk was handled."""
        async with self._turns[session]:  # asyncio.Lock wakes waiters first come, first served
            deadline = time.monotonic() + self.wait_seconds
            while self._pending(session) and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            with self._guard:
                if self._posted[session] > self._taken[session]:  # never handled: resynchronise
                    self._taken[session] = self._posted[session]
                self._posted[session] += 1


class OrderedChunksMiddleware:
    """ASGI middleware: stream-chunk POSTs pass `gate.admit` first; everything else untouched."""

    def __init__(self, app: Any, gate: ChunkGate) -> None:
        self.app, self.gate = app, gate

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        if not STREAM_POST.search(scope["path"]):
            return await self.app(scope, receive, send)
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        session = _session_of(body)
        if session:
            await self.gate.admit(session)
        replay = iter(messages)

        async def replayed() -> dict:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)


def _session_of(body: bytes) -> str | None:
    try:
        session = json.loads(body).get("session_hash")
    except (ValueError, AttributeError):
        return None
    return session if isinstance(session, str) else None
