"""`POST /v1/audio/transcriptions` (OpenAI-compatible, server-sent events with stream=true) and
the block-wise segment stream under it: real speech on the default model, plus a stub engine
(no model) for laziness, prompts, failures mid-stream and client disconnects."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi import FastAPI
from fastapi.testclient import TestClient

import api.openai_audio as openai_audio
from api.auth import AccessPolicy
from api.routes import register_router
from tests.speech import prompt_path, silence
from utils.audio import SAMPLE_RATE, decode_audio
from utils.transcription import DecodeOptions, Segment, TranscriptionResult, Word
from utils.transcription.results import Timings
from utils.transcription.segment_stream import iter_segments, plan_blocks

URL = "/v1/audio/transcriptions"
TWO_SENTENCES = (
    "vm-instructions"  # 7.3 s: "To look into your messages press 1 now. You may quit..."
)
SHORT = "check-number-dial-again"  # 2.2 s: "Please check the number and dial again."


def _wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _file(name: str) -> dict:
    path = prompt_path(name)
    return {"file": (path.name, path.read_bytes(), "audio/wav")}


def _events(body: str) -> list[dict]:
    """The JSON payloads of a text/event-stream body."""
    blocks = [block for block in body.split("\n\n") if block.strip()]
    assert all(block.startswith("data: ") for block in blocks), body
    return [json.loads(block.removeprefix("data: ")) for block in blocks]


@pytest.fixture(scope="module")
def client(engine):
    """The router alone on a FastAPI app, open access; `engine` loads the default model once."""
    app = FastAPI()
    register_router(app, openai_audio.openai_audio_router(), AccessPolicy())
    with TestClient(app) as test_client:
        yield test_client


# -- real speech ---------------------------------------------------------------------------------
def test_stream_yields_segments_in_order_and_the_plain_text(client):
    data = {"stream": "true", "language": "en"}  # detection: see the stub tests
    response = client.post(URL, files=_file(TWO_SENTENCES), data=data)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    deltas, done = events[:-1], events[-1]
    assert [e["type"] for e in deltas] == ["transcript.text.delta"] * len(deltas)
    assert len(deltas) >= 2
    starts = [e["segment"]["start"] for e in deltas]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert [e["segment"]["id"] for e in deltas] == list(range(len(deltas)))
    assert all(e["segment"]["words"] for e in deltas)
    assert done["type"] == "transcript.text.done" and done["language"] == "en"
    assert "".join(e["delta"] for e in deltas) == done["text"]
    assert "press 1 now" in done["text"].lower().replace(",", "")

    data = {"model": "whisper-1", "language": "en"}
    plain = client.post(URL, files=_file(TWO_SENTENCES), data=data)
    assert plain.status_code == 200, plain.text
    assert plain.json()["text"] == done["text"]


def test_verbose_json_has_segments_and_words(client):
    data = {
        "response_format": "verbose_json",
        "timestamp_granularities[]": ["word", "segment"],
        "language": "en",
    }
    response = client.post(URL, files=_file(SHORT), data=data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "transcribe" and body["language"] == "english"
    assert body["duration"] == pytest.approx(2.22, abs=0.01)
    assert "check the number" in body["text"].lower()
    assert body["text"] == "".join(s["text"] for s in body["segments"]).strip()
    segment = body["segments"][0]
    assert {"id", "seek", "start", "end", "tokens", "avg_logprob", "no_speech_prob"} <= set(segment)
    words = body["words"]
    assert [w["word"] for w in words][:2] == ["Please", "check"]
    assert all(0 <= w["start"] <= w["end"] <= body["duration"] for w in words)


# -- refused requests ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("files", "data", "status", "needle"),
    [
        ({"file": ("junk.wav", b"RIFF not really audio", "audio/wav")}, {}, 422, "junk.wav"),
        ({"file": ("junk.wav", b"garbage", "audio/wav")}, {"stream": "true"}, 422, "junk.wav"),
        ({"file": ("empty.wav", b"", "audio/wav")}, {}, 422, "empty.wav"),
        (None, {"model": "no-such-model"}, 404, "no-such-model"),
        (None, {"response_format": "docx"}, 422, "response_format"),
        (None, {"timestamp_granularities[]": "sentence"}, 422, "sentence"),
        (None, {"temperature": "1.5"}, 422, "temperature"),
        (None, {"language": "klingon"}, 422, "klingon"),
    ],
)
def test_bad_requests_are_refused_with_reasons(client, files, data, status, needle):
    response = client.post(URL, files=files or _file(SHORT), data=data)
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]


def test_oversize_upload_is_413(client, monkeypatch):
    monkeypatch.setattr(openai_audio, "MAX_UPLOAD_BYTES", 1000)
    response = client.post(URL, files=_file(SHORT))
    assert response.status_code == 413 and SHORT in response.json()["detail"]


# -- a stub engine: block order, prompts, failures, disconnects ------------------------------------
@dataclasses.dataclass
class StubEngine:
    """Answers each block with one segment naming it; blocks of 3.6 s (window_token_limit 20).
    `fail_at`: the call (0-based) that raises; `delay`: seconds each call takes."""

    kind: str = "stub"
    device: str = "cpu"
    compute_type: str = "none"
    load_seconds: float = 0.0
    window_token_limit: int = 20
    fail_at: int | None = None
    delay: float = 0.0
    calls: list[DecodeOptions] = dataclasses.field(default_factory=list)

    def detect_language(self, samples, options):
        return "en", 0.99

    def transcribe(self, audio, options=None, progress=None, source=""):
        index = len(self.calls)
        self.calls.append(options)
        time.sleep(self.delay)
        if index == self.fail_at:
            raise RuntimeError("decoder exploded")
        duration = decode_audio(audio).samples.size / SAMPLE_RATE
        segment = Segment(0.1, duration - 0.1, f" block {index}.", -0.1, 0.0)
        return TranscriptionResult.from_segments(
            [segment], "en", 1.0, duration, Timings(), None, ""
        )


@pytest.fixture(scope="module")
def three_prompts() -> np.ndarray:
    """Three real prompts (7.3, 6.1, 7.8 s) with 3 s of silence between them: 27 s, 16 kHz."""
    names = ("vm-instructions", "vm-newuser", "queue-periodic-announce")
    parts = [decode_audio(str(prompt_path(name))).samples for name in names]
    return np.concatenate([parts[0], silence(3), parts[1], silence(3), parts[2]])


def test_segments_are_yielded_block_by_block_with_absolute_times(three_prompts):
    stub = StubEngine()
    blocks = plan_blocks(three_prompts, DecodeOptions(), 3.6)
    assert len(blocks) >= 6 and blocks[0].start == 0.0
    assert blocks[-1].end == pytest.approx(three_prompts.size / SAMPLE_RATE)
    stream = iter_segments(stub, three_prompts)
    first = next(stream)
    assert len(stub.calls) == 1  # the first block's segments come before the second is decoded
    rest = list(stream)
    assert len(stub.calls) == len(blocks) == 1 + len(rest)
    assert first.start == pytest.approx(0.1)
    for segment, block in zip([first, *rest], blocks, strict=True):
        assert segment.start == pytest.approx(block.start + 0.1)
        assert segment.end == pytest.approx(block.end - 0.1, abs=1e-3)
    assert all(call.language == "en" for call in stub.calls)


def test_the_prompt_conditions_later_blocks_only_when_asked(three_prompts):
    plain = StubEngine()
    list(iter_segments(plain, three_prompts, DecodeOptions(initial_prompt="Voicemail.")))
    assert [call.initial_prompt for call in plain.calls[:2]] == ["Voicemail.", None]
    conditioned = StubEngine()
    options = DecodeOptions(initial_prompt="Voicemail.", condition_on_previous_text=True)
    list(iter_segments(conditioned, three_prompts, options))
    prompts = [call.initial_prompt for call in conditioned.calls[:3]]
    assert prompts == ["Voicemail.", "Voicemail. block 0.", "Voicemail. block 0. block 1."]


def test_stop_ends_decoding_before_the_next_block(three_prompts):
    stub, stop = StubEngine(), threading.Event()
    for _ in iter_segments(stub, three_prompts, should_stop=stop.is_set):
        stop.set()
    assert len(stub.calls) == 1


@pytest.fixture
def stub_client(client, monkeypatch, three_prompts):
    """`client` whose model "stub" is a fresh StubEngine; returns (client, stub, upload)."""
    stub = StubEngine()
    real = openai_audio.load_engine
    monkeypatch.setattr(
        openai_audio, "load_engine", lambda model: stub if model == "stub" else real(model)
    )
    upload = {"file": ("three.wav", _wav_bytes(three_prompts), "audio/wav")}
    return client, stub, upload


def test_a_failure_mid_stream_is_an_error_event(stub_client):
    client, stub, upload = stub_client
    stub.fail_at = 1
    response = client.post(URL, files=upload, data={"model": "stub", "stream": "true"})
    assert response.status_code == 200
    events = _events(response.text)
    assert [e["type"] for e in events] == ["transcript.text.delta", "error"]
    assert events[0]["delta"] == "block 0."
    assert events[1]["error"]["message"] == "decoder exploded"


def test_a_client_that_leaves_stops_the_decoding(stub_client):
    client, stub, upload = stub_client
    stub.delay = 0.2
    data = {"model": "stub", "stream": "true"}
    with client.stream("POST", URL, files=upload, data=data) as response:
        first = next(response.iter_lines())
    assert json.loads(first.removeprefix("data: "))["delta"] == "block 0."
    time.sleep(3 * stub.delay)
    calls = len(stub.calls)
    time.sleep(3 * stub.delay)
    assert len(stub.calls) == calls <= 3  # of 6 or more blocks: decoding stopped


def test_the_stream_carries_every_block_in_order(stub_client, three_prompts):
    client, stub, upload = stub_client
    response = client.post(URL, files=upload, data={"model": "stub", "stream": "true"})
    events = _events(response.text)
    deltas, done = events[:-1], events[-1]
    assert [e["delta"] for e in deltas] == [
        ("" if i == 0 else " ") + f"block {i}." for i in range(len(stub.calls))
    ]
    assert done == {
        "type": "transcript.text.done",
        "text": "".join(e["delta"] for e in deltas),
        "language": "en",
        "duration": pytest.approx(three_prompts.size / SAMPLE_RATE),
    }


def test_docs_describe_the_endpoint():
    text = (Path(__file__).parents[1] / "docs" / "API.md").read_text()
    assert "/v1/audio/transcriptions" in text and "transcript.text.delta" in text


@pytest.mark.parametrize(
    ("response_format", "media_type", "expected"),
    [
        ("text", "text/plain", "block 0.\n"),
        ("srt", "text/plain", "1\n00:00:00,100 --> 00:00:{end},{ms}\nblock 0.\n"),
        ("vtt", "text/vtt", "WEBVTT\n\n00:00.100 --> 00:{end}.{ms}\nblock 0.\n"),
    ],
)
def test_text_srt_and_vtt(stub_client, three_prompts, response_format, media_type, expected):
    client, _, upload = stub_client
    data = {"model": "stub", "response_format": response_format}
    response = client.post(URL, files=upload, data=data)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media_type)
    end = round((three_prompts.size / SAMPLE_RATE - 0.1) * 1000)
    assert response.text == expected.format(end=f"{end // 1000:02d}", ms=f"{end % 1000:03d}")


def test_shifted_moves_a_segment_and_its_words():
    word = Word(0.5, 0.9, " hello", 0.8)
    segment = Segment(0.4, 1.0, " hello", -0.2, 0.1, words=(word,), window_start=0.0)
    moved = segment.shifted(10.0)
    assert (moved.start, moved.end, moved.window_start) == (10.4, 11.0, 10.0)
    assert moved.words == (Word(10.5, 10.9, " hello", 0.8),)
    assert moved.text == segment.text and moved.avg_logprob == segment.avg_logprob
