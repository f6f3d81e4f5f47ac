"""The running app: Transcribe tab through gradio_client, custom routes and access control."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from api.auth import KEYS_ENV, AccessPolicy, read_api_keys
from app import Settings, launch, parse_settings
from tests.launching import free_port, running_app
from tests.speech import prompt_path

SPEECH = prompt_path("agent-alreadyon")


@pytest.fixture
def start(workspace):
    """Launch apps on free ports; close them after the test."""
    demos = []

    def _start(settings: Settings) -> str:
        demos.append(launch(settings, prevent_thread_lock=True))
        return demos[-1].local_url.rstrip("/")

    yield _start
    for demo in demos:
        demo.close()


@pytest.fixture(scope="module")
def open_app(workspace):
    with running_app() as url:
        yield url


def test_transcribe_tab_through_gradio_client(open_app):
    client = Client(open_app, verbose=False)
    text, words, segments, downloads, facts = client.predict(
        [handle_file(str(SPEECH))], None, api_name="/transcribe"
    )
    assert "agent" in text.lower() and "pound key" in text.lower()
    assert {w["class_or_confidence"] for w in words} <= {"high", "medium", "low"}
    assert len(words) >= 10
    assert segments["headers"][:4] == ["file", "start", "end", "text"] and segments["data"]
    assert sorted(Path(d).suffix for d in downloads) == [".json", ".srt", ".txt", ".vtt"]
    assert facts["sample_rate"] == 8000 and facts["channels"] == 1 and facts["language"] == "en"


def test_many_files_are_batched_and_a_bad_one_is_reported(open_app, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"definitely not audio" * 20)
    files = [handle_file(str(prompt_path(n))) for n in ("agent-loginok", "auth-thankyou")]
    client = Client(open_app, verbose=False)
    text, _, segments, downloads, facts = client.predict(
        [*files, handle_file(str(bad))], None, api_name="/transcribe"
    )
    assert "[agent-loginok.wav]" in text and "thank you" in text.lower()
    assert len(downloads) == 8 and len(facts) == 2
    assert {row[0] for row in segments["data"]} == {"agent-loginok.wav", "auth-thankyou.wav"}


def test_only_bad_input_is_a_clear_error_and_the_app_keeps_serving(open_app, tmp_path):
    bad = tmp_path / "empty.wav"
    bad.write_bytes(b"")
    client = Client(open_app, verbose=False)
    with pytest.raises(Exception, match="empty"):
        client.predict([handle_file(str(bad))], None, api_name="/transcribe")
    with pytest.raises(Exception, match="Add an audio file"):
        client.predict(None, None, api_name="/transcribe")
    assert httpx.get(f"{open_app}/api/health").json() == {"status": "ok"}


def test_rest_transcribe_and_models(open_app):
    models = httpx.get(f"{open_app}/api/models").json()
    assert models[0]["name"] == "whisper-base" and models[0]["kind"] == "ctranslate2"
    with SPEECH.open("rb") as handle:
        reply = httpx.post(
            f"{open_app}/api/transcribe",
            files={"file": ("speech.wav", handle, "audio/wav")},
            data={"options": '{"language": "en", "beam_size": 1}'},
            timeout=120,
        )
    assert reply.status_code == 200 and "agent" in reply.json()["text"].lower()
    bad = httpx.post(
        f"{open_app}/api/transcribe", files={"file": ("x.wav", b"junk" * 50)}, timeout=60
    )
    assert bad.status_code == 422 and "x.wav" in bad.json()["detail"]
    wrong = httpx.post(
        f"{open_app}/api/transcribe",
        files={"file": ("x.wav", b"junk")},
        data={"options": '{"nope": 1}'},
    )
    assert wrong.status_code == 422 and "nope" in wrong.json()["detail"]


def test_api_keys_guard_every_custom_route(start, monkeypatch):
    monkeypatch.setenv(KEYS_ENV, "secret-one, secret-two")
    url = start(Settings(port=free_port()))
    for route in ("/api/health", "/api/models"):
        assert httpx.get(url + route).status_code == 401
        assert httpx.get(url + route, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert (
            httpx.get(url + route, headers={"Authorization": "Bearer secret-two"}).status_code
            == 200
        )
    assert httpx.get(url + "/api/health", params={"token": "secret-one"}).status_code == 200
    assert httpx.post(url + "/api/transcribe", files={"file": ("a.wav", b"x")}).status_code == 401


def test_password_auth_guards_custom_routes_and_accepts_the_login_cookie(start, monkeypatch):
    monkeypatch.delenv(KEYS_ENV, raising=False)
    url = start(Settings(port=free_port(), auth=("ada", "lovelace")))
    assert httpx.get(url + "/api/health").status_code == 401
    with httpx.Client(base_url=url) as session:
        login = session.post("/login", data={"username": "ada", "password": "lovelace"})
        assert login.status_code == 200
        assert session.get("/api/health").status_code == 200


def test_share_without_keys_generates_one(monkeypatch):
    monkeypatch.delenv(KEYS_ENV, raising=False)
    policy = AccessPolicy.for_launch(password_auth=False, share=True)
    assert policy.required and len(policy.api_keys) == 1
    assert not AccessPolicy.for_launch(password_auth=False, share=False).required


def test_key_file_and_settings_from_environment(tmp_path, monkeypatch):
    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys\nalpha\n\nbeta\n")
    assert read_api_keys({"WHISPER_STUDIO_API_KEYS_FILE": str(keys)}) == {"alpha", "beta"}
    monkeypatch.setenv("WHISPER_STUDIO_AUTH", "u:p")
    monkeypatch.setenv("WHISPER_STUDIO_MODEL", "whisper-base")
    monkeypatch.setenv("SPACE_ID", "team/studio")
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    settings = parse_settings([])
    assert (
        settings.auth == ("u", "p")
        and settings.model == "whisper-base"
        and settings.host == "0.0.0.0"
    )
    assert parse_settings(["--port", "9000", "--share"]).share


def _ws_transcribe(url: str, payload: bytes, **params) -> dict:
    from websockets.sync.client import connect

    ws_url = url.replace("http://", "ws://") + "/api/ws/transcribe"
    if params:
        ws_url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    with connect(ws_url, open_timeout=10) as socket_:
        for start in range(0, len(payload), 32_000):
            socket_.send(payload[start : start + 32_000])
        socket_.send('{"event": "end", "options": {"language": "en", "beam_size": 1}}')
        import json

        return json.loads(socket_.recv(timeout=120))


def test_websocket_transcribe_and_its_guard(start, monkeypatch):
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    monkeypatch.setenv(KEYS_ENV, "ws-key")
    url = start(Settings(port=free_port()))
    result = _ws_transcribe(url, SPEECH.read_bytes(), token="ws-key")
    assert "agent" in result["text"].lower()
    assert "error" in _ws_transcribe(url, b"junk" * 100, token="ws-key")
    with pytest.raises((ConnectionClosed, InvalidStatus)):
        _ws_transcribe(url, SPEECH.read_bytes())
