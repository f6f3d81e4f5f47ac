"""OpenAI-compatible ``POST /v1/audio/transcriptions`` (protocol in docs/API.md).

The multipart fields are those of OpenAI's audio API (``file``, ``model``, ``language``,
``prompt``, ``temperature``, ``response_format``, ``timestamp_granularities[]``, ``stream``), so
OpenAI's clients work against the studio. ``model`` is a registry name or path as `load_engine`
takes it; ``whisper-1`` means the default model. With ``stream=true`` the answer is server-sent
events: one ``transcript.text.delta`` per segment as it is decoded
(`utils.transcription.segment_stream`), then ``transcript.text.done``, or an ``error`` event.
Decoding runs on a worker thread; a client that goes away stops it before the next block.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from api.routes import MAX_UPLOAD_BYTES
from utils.audio import SAMPLE_RATE, AudioDecodeError, decode_audio
from utils.model_store import ModelNotFoundError
from utils.transcription import DecodeOptions, Segment, TranscriptionResult
from utils.transcription.engine import Engine, load_engine
from utils.transcription.segment_stream import iter_segments, stream_language
from utils.transcription.writers import to_srt, to_vtt

logger = logging.getLogger(__name__)

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("segment", "word")
OPENAI_MODEL = "whisper-1"  # OpenAI's model name; here: the default model
POLL_SECONDS = 1.0  # how often a stream waiting for its next segment checks the client is there


def _language_code(language: str | None) -> str | None:
    """An ISO-639-1 code (or a Whisper language name, "english") as Whisper's code; 422 if
    Whisper has no such language; None for empty."""
    if not language or not language.strip():
        return None
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    key = language.strip().lower()
    code = TO_LANGUAGE_CODE.get(key, key)
    if code not in LANGUAGES:
        raise HTTPException(422, f"language {language!r} is not a Whisper language code")
    return code


def _language_name(code: str) -> str:
    """Whisper's name of a language code ("en" -> "english"), as OpenAI reports it."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return LANGUAGES.get(code, code)


def decode_options(language: str | None, prompt: str | None, temperature: float) -> DecodeOptions:
    """DecodeOptions for OpenAI's fields: temperature 0 keeps the fallback ladder (OpenAI raises
    it as log probabilities demand), a positive one samples at that temperature only."""
    if not 0.0 <= temperature <= 1.0:
        raise HTTPException(422, f"temperature must be between 0 and 1, not {temperature}")
    options = DecodeOptions(language=_language_code(language), initial_prompt=prompt or None)
    if temperature > 0:
        options = dataclasses.replace(options, temperature=(temperature,))
    return options


def _check_request(response_format: str, granularities: list[str]) -> frozenset[str]:
    """422 for an unknown response format or granularity; the granularities asked for."""
    if response_format not in RESPONSE_FORMATS:
        choices = ", ".join(RESPONSE_FORMATS)
        raise HTTPException(422, f"response_format {response_format!r}: choose one of {choices}")
    unknown = sorted(set(granularities) - set(GRANULARITIES))
    if unknown:
        raise HTTPException(422, f"timestamp_granularities[]: unknown {', '.join(unknown)}")
    return frozenset(granularities or ("segment",))


async def _read_upload(file: UploadFile) -> bytes:
    """The upload's bytes; 413 past MAX_UPLOAD_BYTES."""
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"{file.filename}: larger than {MAX_UPLOAD_BYTES} bytes")
    return data


def _prepare(model: str | None, data: bytes, name: str) -> tuple[Engine, np.ndarray]:
    """The engine (404 for an unknown model, 422 for one no engine runs) and the 16 kHz mono
    float32 samples (n,) of the upload (422 naming the file when it is not audio)."""
    try:
        engine = load_engine(None if model in (None, "", OPENAI_MODEL) else model)
    except ModelNotFoundError as exc:
        raise HTTPException(404, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, f"model {model!r}: {exc}") from exc
    try:
        samples = decode_audio(data).samples
    except AudioDecodeError as exc:
        raise HTTPException(422, f"{name}: {exc}") from exc
    return engine, samples


# -- whole responses -------------------------------------------------------------------------------
def _segment_json(index: int, segment: Segment) -> dict[str, Any]:
    """OpenAI's verbose_json segment; seek in 10 ms frames, times in seconds."""
    return {
        "id": index,
        "seek": round(segment.window_start * 100),
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": list(segment.tokens),
        "temperature": segment.temperature,
        "avg_logprob": segment.avg_logprob,
        "compression_ratio": segment.compression_ratio,
        "no_speech_prob": segment.no_speech_prob,
    }


def verbose_json(result: TranscriptionResult, granularities: frozenset[str]) -> dict[str, Any]:
    """OpenAI's verbose_json: segments and/or words (without leading spaces) as asked."""
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": _language_name(result.language),
        "duration": result.duration,
        "text": result.text,
    }
    if "segment" in granularities:
        body["segments"] = [_segment_json(i, s) for i, s in enumerate(result.segments)]
    if "word" in granularities:
        body["words"] = [
            {"word": w.word.strip(), "start": w.start, "end": w.end} for w in result.words
        ]
    body["usage"] = {"type": "duration", "seconds": math.ceil(result.duration)}
    return body


def render_response(
    result: TranscriptionResult, response_format: str, granularities: frozenset[str]
) -> Response:
    """The response OpenAI gives for `response_format` (checked by `_check_request`)."""
    if response_format == "json":
        usage = {"type": "duration", "seconds": math.ceil(result.duration)}
        return JSONResponse({"text": result.text, "usage": usage})
    if response_format == "verbose_json":
        return JSONResponse(verbose_json(result, granularities))
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(result), media_type="text/vtt")
    return PlainTextResponse(to_srt(result) if response_format == "srt" else result.text + "\n")


# -- server-sent events ----------------------------------------------------------------------------
def sse(event: dict[str, Any]) -> str:
    """One server-sent event carrying `event` as JSON."""
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"


def delta_event(index: int, segment: Segment, delta: str) -> dict[str, Any]:
    """``transcript.text.delta`` for one segment; ``segment`` (not OpenAI's) adds its index, times
    (seconds from the file start) and words (probability in [0, 1])."""
    words = [
        {"word": w.word.strip(), "start": w.start, "end": w.end, "probability": w.probability}
        for w in segment.words
    ]
    extra = {"id": index, "start": segment.start, "end": segment.end, "text": segment.text}
    return {"type": "transcript.text.delta", "delta": delta, "segment": extra | {"words": words}}


def error_event(message: str) -> dict[str, Any]:
    """An error event in OpenAI's shape (its clients raise it as an APIError)."""
    return {"type": "error", "error": {"message": message, "type": "server_error"}}


@dataclasses.dataclass(frozen=True)
class _Done:
    """The worker's last item after a complete decode."""

    language: str  # "" without speech


@dataclasses.dataclass(frozen=True)
class _Failure:
    """The worker's last item when decoding failed."""

    message: str


def _produce(
    engine: Engine,
    samples: np.ndarray,
    options: DecodeOptions,
    stop: threading.Event,
    put: Callable[[object], None],
) -> None:
    """Worker thread: put each segment as it is decoded, then `_Done` (or `_Failure`). Stops
    before the next block or segment once `stop` is set."""
    outcome: _Done | _Failure = _Failure("decoding stopped before the end")
    try:
        language, _ = stream_language(engine, samples, options)
        if language is not None:
            chosen = dataclasses.replace(options, language=language)
            for segment in iter_segments(engine, samples, chosen, should_stop=stop.is_set):
                if stop.is_set():
                    return
                put(segment)
        outcome = _Done(language or "")
    except Exception as exc:  # any failure must reach the client as an error event
        logger.exception("streamed transcription failed")
        outcome = _Failure(str(exc) or type(exc).__name__)
    finally:
        put(outcome)


def _start_worker(
    engine: Engine, samples: np.ndarray, options: DecodeOptions, stop: threading.Event
) -> asyncio.Queue:
    """A daemon thread running `_produce`; its items arrive on the returned queue."""
    loop, queue = asyncio.get_running_loop(), asyncio.Queue()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop has closed: nobody is listening any more
            stop.set()

    args = (engine, samples, options, stop, put)
    threading.Thread(target=_produce, args=args, name="openai-transcription", daemon=True).start()
    return queue


async def _next_item(queue: asyncio.Queue, request: Request) -> object | None:
    """The next queue item; None once the client has gone away."""
    while True:
        try:
            return await asyncio.wait_for(queue.get(), POLL_SECONDS)
        except TimeoutError:
            if await request.is_disconnected():
                return None


async def stream_events(
    engine: Engine, samples: np.ndarray, options: DecodeOptions, request: Request
) -> AsyncIterator[str]:
    """A delta event per segment as the worker decodes it, then the done event (its text: the
    deltas joined, stripped) or an error event. Leaving early (the client gone) stops the
    worker before its next block."""
    stop = threading.Event()
    queue, index, text = _start_worker(engine, samples, options, stop), 0, ""
    try:
        while isinstance(item := await _next_item(queue, request), Segment):
            delta = item.text if text else item.text.lstrip()
            yield sse(delta_event(index, item, delta))
            index, text = index + 1, text + delta
        if isinstance(item, _Failure):
            yield sse(error_event(item.message))
        elif isinstance(item, _Done):
            duration = samples.size / SAMPLE_RATE
            done = {"type": "transcript.text.done", "text": text.strip()}
            yield sse(done | {"language": item.language, "duration": duration})
    finally:
        stop.set()  # the worker ends after its current block; nothing waits for it


# -- the route -------------------------------------------------------------------------------------
def openai_audio_router() -> APIRouter:
    """``POST /v1/audio/transcriptions``; mount it with `api.routes.register_router`."""
    router = APIRouter(prefix="/v1/audio", tags=["openai"])

    @router.post("/transcriptions")
    async def create_transcription(
        request: Request,
        file: UploadFile = File(...),
        model: str | None = Form(OPENAI_MODEL),
        language: str | None = Form(None),
        prompt: str | None = Form(None),
        temperature: float = Form(0.0),
        response_format: str = Form("json"),
        timestamp_granularities: list[str] = Form([], alias="timestamp_granularities[]"),
        stream: bool = Form(False),
    ) -> Response:
        granularities = _check_request(response_format, timestamp_granularities)
        options = decode_options(language, prompt, temperature)
        name = file.filename or "upload"
        engine, samples = await run_in_threadpool(_prepare, model, await _read_upload(file), name)
        if stream:
            events = stream_events(engine, samples, options, request)
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        try:
            result = await run_in_threadpool(engine.transcribe, samples, options, None, name)
        except ValueError as exc:  # OptionNotSupportedError: an option this engine refuses
            raise HTTPException(422, f"{name}: {exc}") from exc
        return render_response(result, response_format, granularities)

    return router
