"""The project's own REST routes: health, model registry and transcription.

Later features add their routers (live streaming, TensorBoard, training API) through
`register_router`; every router gets the same access guard.
"""

from __future__ import annotations

import dataclasses
import json

from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool

from api.auth import AccessPolicy, http_guard
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


def register_router(app: FastAPI, router: APIRouter, policy: AccessPolicy) -> None:
    """Mount `router` on `app` behind the access guard."""
    app.include_router(router, dependencies=[Depends(http_guard(policy))])
