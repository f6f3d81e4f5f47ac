"""``/ws/transcribe`` (issue 7): a real 8 kHz recording streamed as pcm16 frames gives ready,
vad, partial and final events whose text is the prompt; malformed input gets an error event and
a clean close without touching another session; past the limit a session is told the server is
busy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.launching import running_app
from tests.speech import asterisk_prompts, prompt_path

PROMPT = "agent-alreadyon"


@pytest.fixture(scope="module")
def ws_url(workspace):
    with running_app() as url:
        yield url.replace("http://", "ws://") + "/ws/transcribe"


def _connect(url: str):
    from websockets.sync.client import connect

    return connect(url, open_timeout=30, close_timeout=10, max_size=None)


def _events(socket) -> list[dict]:
    from websockets.exceptions import ConnectionClosed

    events = []
    try:
        while True:
            events.append(json.loads(socket.recv(timeout=60)))
    except ConnectionClosed:
        return events


def test_a_recording_streams_to_finals(ws_url):
    pcm, rate = sf.read(prompt_path(PROMPT), dtype="int16")
    pcm = np.concatenate([pcm, np.zeros(rate, dtype=np.int16)])  # a second of silence after
    with _connect(ws_url) as socket:
        socket.send(json.dumps({"language": "en", "sample_rate": rate, "encoding": "pcm16"}))
        assert json.loads(socket.recv(timeout=60)) == {"type": "ready"}
        for first in range(0, pcm.size, 1000):  # odd-sized frames, 125 ms at 8 kHz
            socket.send(pcm[first : first + 1000].tobytes())
        socket.send(json.dumps({"type": "end"}))
        events = _events(socket)
    kinds = [e["type"] for e in events]
    finals = [e for e in events if e["type"] == "final"]
    assert "vad" in kinds and finals and "error" not in kinds
    assert [f["seq"] for f in finals] == list(range(1, len(finals) + 1))
    text = " ".join(f["text"] for f in finals).lower()
    expected = asterisk_prompts()[PROMPT].lower()
    for word in ("agent", "already", "logged", "please", "number", "pound"):
        assert word in text and word in expected


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        (b"\x00\x01", None, "send the JSON config before any audio"),
        ('{"sample_rate": 5}', None, "sample_rate"),
        ('{"encoding": "mp3"}', None, "encoding must be"),
        ('{"colour": "red"}', None, "unknown config keys: colour"),
        ('{"model": "no-such-model"}', None, "bad config"),
        ('{"encoding": "pcm16"}', b"\x00\x01\x02", "whole 2-byte samples; got 3 bytes"),
        ('{"encoding": "pcm16"}', b"\x00" * (2 << 20), "at most"),
        ('{"encoding": "pcm16"}', '{"type": "pause"}', "unexpected message"),
    ],
)
def test_malformed_input_gets_an_error_event_and_a_close(ws_url, first, then, message):
    with _connect(ws_url) as bystander:  # another session, unaffected
        bystander.send(json.dumps({"language": "en"}))
        assert json.loads(bystander.recv(timeout=60))["type"] == "ready"
        with _connect(ws_url) as socket:
            socket.send(first)
            if then is not None:
                assert json.loads(socket.recv(timeout=60))["type"] == "ready"
                socket.send(then)
            events = _events(socket)
        assert events[-1]["type"] == "error" and message in events[-1]["message"]
        bystander.send(np.zeros(1600, dtype=np.int16).tobytes())
        bystander.send(json.dumps({"type": "end"}))
        assert all(e["type"] != "error" for e in _events(bystander))


def test_an_abrupt_disconnect_frees_the_session(ws_url):
    for _ in range(10):  # more than the session limit: each is released
        socket = _connect(ws_url)
        socket.send(json.dumps({"language": "en"}))
        assert json.loads(socket.recv(timeout=60))["type"] == "ready"
        socket.send(np.zeros(8000, dtype=np.int16).tobytes())
        socket.close()
    assert _ready_within(ws_url, seconds=10)


def _ready_within(url: str, seconds: float) -> bool:
    """A new session opens within `seconds` (the server notices disconnects asynchronously)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with _connect(url) as socket:
            socket.send(json.dumps({"language": "en"}))
            if json.loads(socket.recv(timeout=60))["type"] == "ready":
                return True
        time.sleep(0.2)
    return False


def test_past_the_session_limit_a_new_session_is_told_the_server_is_busy(ws_url):
    from utils.streaming.session import StreamHub

    held = []
    try:
        for _ in range(StreamHub().max_sessions):
            socket = _connect(ws_url)
            socket.send(json.dumps({"language": "en"}))
            assert json.loads(socket.recv(timeout=60))["type"] == "ready"
            held.append(socket)
        with _connect(ws_url) as extra:
            extra.send(json.dumps({"language": "en"}))
            events = _events(extra)
        assert events[-1]["type"] == "error" and "busy" in events[-1]["message"]
    finally:
        for socket in held:
            socket.close()
    assert _ready_within(ws_url, seconds=10)
