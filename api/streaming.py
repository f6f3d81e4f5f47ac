"""``/ws/transcribe``: live transcription over a WebSocket (protocol in docs/API.md).

The client sends a JSON config, then binary audio frames, then ``{"type": "end"}``; the server
answers ``ready`` or ``error``, then ``vad``, ``partial`` and ``final`` events, and after ``end``
the last finals before closing. A bad message gets an ``error`` event and a clean close; it never
touches other sessions."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from fastapi.concurrency import run_in_threadpool

from api.auth import AccessPolicy, websocket_guard
from utils.streaming.audio_input import StreamFormatError
from utils.streaming.session import (
    CATCH_UP_SECONDS,
    ServerBusyError,
    StreamConfig,
    StreamHub,
    StreamSession,
)

INBOX_FRAMES = 512  # frames received but not decoded yet, before the client is pushed back


async def _send_all(websocket: WebSocket, events: list[dict[str, Any]]) -> None:
    for event in events:
        await websocket.send_json(event)


async def _fail(websocket: WebSocket, message: str, code: int) -> None:
    await websocket.send_json({"type": "error", "message": message})
    await websocket.close(code=code)


async def _open(websocket: WebSocket, hub: StreamHub) -> StreamSession | None:
    """Read the config message and open a session; None (after an error event) if it fails."""
    message = await websocket.receive()
    if message.get("type") == "websocket.disconnect":
        return None
    if message.get("text") is None:
        await _fail(
            websocket, "send the JSON config before any audio", status.WS_1003_UNSUPPORTED_DATA
        )
        return None
    try:
        config = StreamConfig.from_message(json.loads(message["text"]))
        session = await run_in_threadpool(hub.open, config)
    except ServerBusyError as exc:
        await _fail(websocket, str(exc), status.WS_1013_TRY_AGAIN_LATER)
        return None
    except (ValueError, LookupError) as exc:  # bad JSON, config or model
        await _fail(websocket, f"bad config: {exc}", status.WS_1008_POLICY_VIOLATION)
        return None
    await websocket.send_json({"type": "ready"})
    return session


async def _receive(websocket: WebSocket, inbox: asyncio.Queue) -> None:
    """Messages into `inbox` with their arrival time, until the client ends or leaves; a bounded
    inbox pushes back on a client sending faster than the stream decodes."""
    try:
        while True:
            message = await websocket.receive()
            await inbox.put((message, time.monotonic()))
            if message.get("bytes") is None:
                return
    except (WebSocketDisconnect, RuntimeError):  # gone mid-receive: end the stream, never hang
        await inbox.put(({"type": "websocket.disconnect"}, time.monotonic()))


async def _batch(inbox: asyncio.Queue, catch_up_bytes: int) -> tuple[list, dict | None]:
    """Frames received since the last update (at least one message; at most about
    `catch_up_bytes`), and the control message that ended the batch, if any."""
    frames: list[tuple[bytes, float]] = []
    message, arrived = await inbox.get()
    while True:
        if message.get("bytes") is None:
            return frames, message
        frames.append((message["bytes"], arrived))
        if inbox.empty() or sum(len(f) for f, _ in frames) >= catch_up_bytes:
            return frames, None
        message, arrived = inbox.get_nowait()


async def _stream(websocket: WebSocket, session: StreamSession) -> None:
    inbox: asyncio.Queue = asyncio.Queue(maxsize=INBOX_FRAMES)
    receiver = asyncio.create_task(_receive(websocket, inbox))
    catch_up = int(CATCH_UP_SECONDS * session.bytes_per_second)
    try:
        while True:
            frames, control = await _batch(inbox, catch_up)
            if frames:
                await _send_all(websocket, await run_in_threadpool(session.feed_frames, frames))
            if control is None:
                continue
            if control.get("type") == "websocket.disconnect":
                return
            request = json.loads(control.get("text") or "{}")
            if request.get("type") != "end":
                raise StreamFormatError(
                    f"unexpected message {request!r}: send audio or {{'type': 'end'}}"
                )
            await _send_all(websocket, await run_in_threadpool(session.finish))
            await websocket.close()
            return
    finally:
        receiver.cancel()


def streaming_router(policy: AccessPolicy, hub: StreamHub) -> APIRouter:
    router = APIRouter()

    @router.websocket("/ws/transcribe")
    async def live_transcribe(websocket: WebSocket) -> None:
        if not await websocket_guard(policy, websocket):
            return
        await websocket.accept()
        session = None
        try:
            session = await _open(websocket, hub)
            if session is not None:
                await _stream(websocket, session)
        except WebSocketDisconnect:
            return
        except (StreamFormatError, ValueError) as exc:
            await _fail(websocket, str(exc), status.WS_1003_UNSUPPORTED_DATA)
        finally:
            if session is not None:
                hub.close()

    return router
