"""The project's own REST routes: health, model registry and transcription.

Later features add their routers (live streaming, TensorBoard, training API) through
`register_router`; every router gets the same access guard.
"""

from __future__ import annotations

import dataclasses
import json

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    File,
    Form,
    HTTPException,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.concurrency import run_in_threadpool

from api.auth import AccessPolicy, http_guard, websocket_guard
from utils.audio import AudioDecodeError
from utils.model_store import ModelNotFoundError
from utils.registry import list_models
from utils.transcription import DecodeOptions
from utils.transcription.engine import load_engine
from utils.transcription.options import OptionNotSupportedError

MAX_UPLOAD_BYTES = 2 * 1024**3  # 2 GiB


def _decode_options(raw: str | None) -> DecodeOptions:
    """DecodeOptions from a JSON object of field values; unknown fields are an error."""
    if not raw:
        return DecodeOptions()
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise HTTPException(422, f"options is not valid JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise HTTPException(422, "options must be a JSON object")
    known = {f.name for f in dataclasses.fields(DecodeOptions)} - {"vad"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise HTTPException(422, f"unknown options: {', '.join(unknown)}")
    for name in ("temperature", "suppress_tokens", "vocabulary"):
        if name in values and isinstance(values[name], list):
            values[name] = tuple(values[name])
    try:
        return DecodeOptions(**values)
    except (TypeError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from exc


def transcription_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["transcription"])

    @router.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/models")
    def models() -> list[dict]:
        return [entry.as_row() for entry in list_models()]

    @router.post("/transcribe")
    async def transcribe(
        file: UploadFile = File(...),
        model: str | None = Form(None),
        options: str | None = Form(None),
    ) -> dict:
        decode_options = _decode_options(options)
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"{file.filename}: larger than {MAX_UPLOAD_BYTES} bytes")
        try:
            engine = await run_in_threadpool(load_engine, model)
            result = await run_in_threadpool(
                engine.transcribe, data, decode_options, None, file.filename or "upload"
            )
        except ModelNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        except (AudioDecodeError, OptionNotSupportedError) as exc:
            raise HTTPException(422, f"{file.filename}: {exc}") from exc
        return result.to_dict()

    return router


def _transcribe_bytes(data: bytes, model: str | None, options: DecodeOptions, name: str) -> dict:
    engine = load_engine(model)
    return engine.transcribe(data, options, None, name).to_dict()


def websocket_router(policy: AccessPolicy) -> APIRouter:
    """``/api/ws/transcribe``: send audio as binary messages, then a JSON text message
    ``{"event": "end", "model": ..., "options": {...}}``; the reply is the JSON result, or
    ``{"error": ...}`` naming what was wrong."""
    router = APIRouter(prefix="/api/ws")

    @router.websocket("/transcribe")
    async def transcribe_socket(websocket: WebSocket) -> None:
        if not await websocket_guard(policy, websocket):
            return
        await websocket.accept()
        chunks: list[bytes] = []
        try:
            while True:
                message = await websocket.receive()
                if message.get("type") == "websocket.disconnect":
                    return
                if message.get("bytes"):
                    chunks.append(message["bytes"])
                    if sum(map(len, chunks)) > MAX_UPLOAD_BYTES:
                        await websocket.send_json({"error": "audio larger than 2 GiB"})
                        return await websocket.close(code=1009)
                    continue
                request = json.loads(message.get("text") or "{}")
                if request.get("event") == "end":
                    break
            options = _decode_options(json.dumps(request.get("options") or {}))
            result = await run_in_threadpool(
                _transcribe_bytes, b"".join(chunks), request.get("model"), options, "stream"
            )
            await websocket.send_json(result)
        except WebSocketDisconnect:
            return
        except HTTPException as exc:
            await websocket.send_json({"error": exc.detail})
        except (ValueError, LookupError) as exc:  # bad JSON, audio, options or model
            await websocket.send_json({"error": str(exc)})
        await websocket.close()

    return router


def register_router(app: FastAPI, router: APIRouter, policy: AccessPolicy) -> None:
    """Mount `router` on `app` behind the access guard (WebSocket routes check it themselves,
    since HTTP dependencies cannot close a socket with a reason)."""
    app.include_router(router, dependencies=[Depends(http_guard(policy))])
