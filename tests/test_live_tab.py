"""The Live tab's handlers and the standalone live app (issue 7): microphone chunks (48 kHz stereo
int16, as a browser sends them) become timed finals with confidence-tinted words; the stream's
session slot is released when the recording stops or the browser session ends; a busy server
is named in the status line; `app_streaming.py` serves the Live UI and the WebSocket together."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import soxr

from tests.launching import running_app
from tests.speech import asterisk_prompts, prompt_path
from ui_components.live_tab import LiveHandlers, release_stream, render_status, render_transcript
from utils.audio import SAMPLE_RATE, load_audio
from utils.streaming.live import LiveSnapshot, to_mono_float
from utils.streaming.session import StreamHub

PROMPT = "agent-alreadyon"
RATE = 48_000


@pytest.fixture(scope="module")
def microphone_chunks():
    """The prompt then 1.5 s of silence, as 0.25 s stereo int16 chunks at 48 kHz."""
    speech = load_audio(prompt_path(PROMPT))
    audio = soxr.resample(np.concatenate([speech, np.zeros(24_000, np.float32)]), SAMPLE_RATE, RATE)
    stereo = np.stack([audio, audio], axis=1)
    pcm = (np.clip(stereo, -1, 1) * 32767).astype(np.int16)
    step = RATE // 4
    return [(RATE, pcm[i : i + step]) for i in range(0, len(pcm), step)]


def test_microphone_chunks_become_timed_finals_and_the_slot_is_released(
    workspace, microphone_chunks
):
    hub = StreamHub(max_sessions=2)
    handlers = LiveHandlers(hub)
    stream = None
    for chunk in microphone_chunks:
        stream, status, _ = handlers.chunk(chunk, stream, "", "en", True)
        assert "latency" in status  # the handler returns at once; decoding runs behind
    assert hub.active == 1
    stream, status, transcript = handlers.stop(stream)
    snapshot = stream.snapshot()
    assert snapshot.finished and not snapshot.error and hub.active == 0
    assert "Stopped" in status and snapshot.behind == 0.0
    text = " ".join(f["text"] for f in snapshot.finals).lower()
    expected = asterisk_prompts()[PROMPT].lower()
    for word in ("agent", "already", "logged", "number", "pound"):
        assert word in text and word in expected
    assert transcript.count("class='live-word'") == sum(len(f["words"]) for f in snapshot.finals)
    assert "[00:0" in transcript and "border-bottom:2px solid #" in transcript
    assert [f["seq"] for f in snapshot.finals] == list(range(1, len(snapshot.finals) + 1))
    # A new recording starts a new stream; the old one is left as it was.
    again, _, _ = handlers.chunk(microphone_chunks[0], stream, "", "en", True)
    assert again is not stream
    release_stream(again)  # the browser session ended
    _wait_until(lambda: hub.active == 0)


def test_a_busy_server_is_named_in_the_status_line(workspace, microphone_chunks):
    hub = StreamHub(max_sessions=0)
    stream, _, _ = LiveHandlers(hub).chunk(microphone_chunks[0], None, "", "en", True)
    _wait_until(lambda: stream.snapshot().finished)
    assert "busy" in render_status(stream.snapshot())
    stream.push(RATE, microphone_chunks[1][1])  # dropped, no error, nothing queued
    assert stream.snapshot().behind == 0.0


def test_an_unknown_model_is_named_and_bad_chunks_are_refused(workspace, microphone_chunks):
    stream, _, _ = LiveHandlers(StreamHub()).chunk(
        microphone_chunks[0], None, "no-such-model", "en", True
    )
    _wait_until(lambda: stream.snapshot().finished)
    assert "no-such-model" in (stream.snapshot().error or "")
    with pytest.raises(ValueError, match="shape"):
        to_mono_float(np.zeros((2, 2, 2), np.int16))


def test_partial_text_and_markup_are_escaped():
    word = {"word": " <b>", "start": 0.0, "end": 0.5, "probability": 0.2}
    final = {"seq": 1, "text": "<b>", "words": [word], "start": 61.0, "end": 61.5}
    partial = {"text": "<i>x</i>", "words": []}
    rendered = render_transcript(LiveSnapshot(finals=(final,), partial=partial))
    assert "<b>" not in rendered and "&lt;b&gt;" in rendered and "&lt;i&gt;" in rendered
    assert "[01:01.0 → 01:01.5]" in rendered and "#ef4444" in rendered  # low confidence: red
    assert "Speaking" in render_status(LiveSnapshot(speech=True, latency=0.8))


def test_the_standalone_live_app_serves_the_ui_and_the_websocket(workspace):
    import httpx
    from websockets.sync.client import connect

    from app_streaming import create_streaming_app

    with running_app(factory=create_streaming_app) as url:
        page = httpx.get(url + "/", timeout=30)
        assert page.status_code == 200 and "Whisper Studio Live" in page.text
        with connect(url.replace("http://", "ws://") + "/ws/transcribe", open_timeout=30) as ws:
            ws.send(json.dumps({"language": "en"}))
            assert json.loads(ws.recv(timeout=60)) == {"type": "ready"}


def _wait_until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_chunk_gate_holds_a_chunk_until_the_previous_one_was_taken():
    import asyncio

    from api.stream_chunks import ChunkGate

    gate = ChunkGate(wait_seconds=0.3)

    async def admit_seconds() -> float:
        started = time.monotonic()
        await gate.admit("s")
        return time.monotonic() - started

    assert asyncio.run(admit_seconds()) < 0.1  # nothing pending
    assert asyncio.run(admit_seconds()) >= 0.25  # the first was never taken: held, then let on
    gate.taken("s")
    assert asyncio.run(admit_seconds()) < 0.1  # the previous one was taken
    gate.forget("s")  # the recording stopped: counts start afresh
    assert asyncio.run(admit_seconds()) < 0.1
