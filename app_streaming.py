"""Live transcription on its own: the Live UI at http://HOST:PORT/ and its WebSocket at
ws://HOST:PORT/ws/transcribe, from one process.

    python app_streaming.py [--host HOST] [--port PORT] [--model MODEL] [--max-live-sessions N]

It takes the same settings as app.py (--share, --auth and their environment variables too) and
serves the same Live tab and WebSocket; the two share one session limit.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import gradio as gr

from api.auth import AccessPolicy
from api.stream_chunks import ChunkGate
from app import Settings, launch, live_server, parse_settings
from ui_components.live_tab import build_live_tab
from utils.streaming.session import StreamHub


def build_live_ui(default_model: str | None, hub: StreamHub, gate: ChunkGate) -> gr.Blocks:
    with gr.Blocks(title="Whisper Studio Live") as demo:
        gr.Markdown("# Whisper Studio · Live")
        build_live_tab(hub, gate, default_model)
    return demo


def create_streaming_app(settings: Settings) -> tuple[gr.Blocks, gr.Server, AccessPolicy]:
    """The Live UI and the /ws/transcribe route over one session hub."""
    policy = AccessPolicy.for_launch(password_auth=settings.auth is not None, share=settings.share)
    server, hub, gate = live_server(settings, policy, "Whisper Studio Live API")
    demo = build_live_ui(settings.model, hub, gate)
    demo.queue(default_concurrency_limit=2)
    return demo, server, policy


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv, "Serve live transcription (UI and WebSocket).")
    launch(settings, factory=create_streaming_app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
