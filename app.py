"""Whisper Studio: one server for the Gradio UI and the project's own HTTP/WebSocket routes.

    python app.py [--host HOST] [--port PORT] [--share] [--auth USER:PASS] [--model MODEL]

Design: the custom routes live on a `gradio.Server` (a FastAPI app that Gradio's launcher
accepts), and the UI is launched onto that same app with `Blocks.launch(_app=server)`. Gradio
therefore owns the process: `--share` tunnels, `--auth` logins and a Hugging Face Space all work,
and the custom routes ride along. (`gr.mount_gradio_app` would put Gradio under our FastAPI app
instead, and Gradio refuses `share=True` for mounted apps.)

Every setting also reads an environment variable, so the same file runs as a Space:
WHISPER_STUDIO_MODEL, WHISPER_STUDIO_AUTH (USER:PASS), WHISPER_STUDIO_SHARE=1,
GRADIO_SERVER_NAME, GRADIO_SERVER_PORT, and the API-key variables of api/auth.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gradio as gr

from api.auth import AccessPolicy
from api.openai_audio import openai_audio_router
from api.routes import register_router, transcription_router, websocket_router
from api.stream_chunks import ChunkGate, OrderedChunksMiddleware
from api.streaming import streaming_router
from api.tensorboard import mount_tensorboard
from ui_components.datasets_tab import build_datasets_tab
from ui_components.export_tab import build_export_tab
from ui_components.live_tab import build_live_tab
from ui_components.training_tab import build_training_tab
from ui_components.transcribe_tab import build_transcribe_tab, model_picker_update
from utils.streaming.session import StreamHub
from utils.transcription.engine import load_engine

TOGGLE_THEME_JS = "() => { document.body.classList.toggle('dark'); }"
CSS = ".studio-header { display: flex; justify-content: space-between; align-items: center; }"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: tuple[str, str] | None = None
    model: str | None = None
    max_live_sessions: int = 8


def build_ui(default_model: str | None, hub: StreamHub, gate: ChunkGate) -> gr.Blocks:
    """The studio's Blocks: a header with the theme toggle, then one tab per working feature.
    `hub` holds the live sessions (the WebSocket API shares it: one limit for both); `gate`
    orders the Live tab's microphone chunks (see `live_server`)."""
    with gr.Blocks(title="Whisper Studio") as demo:
        with gr.Row(elem_classes="studio-header"):
            gr.Markdown("# Whisper Studio")
            toggle = gr.Button("Light / dark", size="sm", scale=0, elem_id="theme-toggle")
        toggle.click(None, js=TOGGLE_THEME_JS)
        with gr.Tabs():
            with gr.Tab("Datasets", id="datasets"):
                build_datasets_tab()
            with gr.Tab("Training", id="training"):
                build_training_tab(demo)
            with gr.Tab("Transcribe", id="transcribe") as transcribe_tab:
                picker = build_transcribe_tab(default_model)
            with gr.Tab("Live", id="live") as live_tab:
                live_picker = build_live_tab(hub, gate, default_model)
            with gr.Tab("Export", id="export"):
                build_export_tab()
        # New exports and runs show up as soon as the tab is opened again.
        transcribe_tab.select(model_picker_update, outputs=picker)
        live_tab.select(model_picker_update, outputs=live_picker)
    return demo


def live_server(
    settings: Settings, policy: AccessPolicy, title: str
) -> tuple[gr.Server, StreamHub, ChunkGate]:
    """A server carrying /ws/transcribe and the middleware that keeps the Live tab's microphone
    chunks in order; the hub and gate for the Live tab that it serves."""
    hub, gate = StreamHub(settings.max_live_sessions), ChunkGate()
    server = gr.Server(title=title)
    server.add_middleware(OrderedChunksMiddleware, gate=gate)
    server.include_router(streaming_router(policy, hub))
    return server, hub, gate


def create_app(settings: Settings) -> tuple[gr.Blocks, gr.Server, AccessPolicy]:
    """The UI, the server carrying the custom routes, and the access policy guarding them."""
    policy = AccessPolicy.for_launch(password_auth=settings.auth is not None, share=settings.share)
    server, hub, gate = live_server(settings, policy, "Whisper Studio API")
    register_router(server, transcription_router(), policy)
    register_router(server, openai_audio_router(), policy)
    server.include_router(websocket_router(policy))
    mount_tensorboard(server, policy)
    demo = build_ui(settings.model, hub, gate)
    demo.queue(default_concurrency_limit=2)
    return demo, server, policy


def warm_up(model: str | None) -> threading.Thread:
    """Load the default model in the background, so the first live stream or transcription does
    not wait for it (a failure is logged; the first request reports it again)."""

    def load() -> None:
        try:
            load_engine(model)
        except (LookupError, OSError, RuntimeError, ValueError) as exc:
            logging.getLogger(__name__).warning("model %s not preloaded: %s", model, exc)

    thread = threading.Thread(target=load, name="warm-up", daemon=True)
    thread.start()
    return thread


AppFactory = Callable[[Settings], tuple[gr.Blocks, gr.Server, AccessPolicy]]


def launch(
    settings: Settings, *, prevent_thread_lock: bool = False, factory: AppFactory = create_app
) -> gr.Blocks:
    """Start serving what `factory` builds (the studio, or app_streaming's live-only app); the
    returned Blocks knows its `local_url` and `share_url`."""
    demo, server, policy = factory(settings)
    warm_up(settings.model)
    if settings.share and policy.api_keys and not os.environ.get("WHISPER_STUDIO_API_KEYS"):
        print(f"API key for this shared app: {next(iter(policy.api_keys))}")
    demo.launch(
        _app=server,
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        auth=settings.auth,
        prevent_thread_lock=prevent_thread_lock,
        css=CSS,
        footer_links=["api", "settings"],
    )
    return demo


def _auth_pair(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("--auth takes USER:PASS")
    return user, password


def parse_settings(
    argv: Sequence[str] | None = None, description: str = "Launch Whisper Studio."
) -> Settings:
    env = os.environ
    in_space = "SPACE_ID" in env
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--host", default=env.get("GRADIO_SERVER_NAME", "0.0.0.0" if in_space else "127.0.0.1")
    )
    parser.add_argument("--port", type=int, default=int(env.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument(
        "--share", action="store_true", default=env.get("WHISPER_STUDIO_SHARE") == "1"
    )
    parser.add_argument(
        "--auth", type=_auth_pair, default=_auth_pair(env.get("WHISPER_STUDIO_AUTH"))
    )
    parser.add_argument("--model", default=env.get("WHISPER_STUDIO_MODEL"))
    parser.add_argument(
        "--max-live-sessions",
        type=int,
        default=int(env.get("WHISPER_STUDIO_MAX_LIVE_SESSIONS", "8")),
        help="live streams (Live tab and /ws/transcribe together) before new ones are refused",
    )
    args = parser.parse_args(argv)
    return Settings(args.host, args.port, args.share, args.auth, args.model, args.max_live_sessions)


def main(argv: Sequence[str] | None = None) -> int:
    launch(parse_settings(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
