"""The Live tab: the microphone streams into `utils.streaming.live.LiveStream`; final text is
shown with timestamps and words tinted by confidence, the unstable tail in grey italics, with a
speaking/silence indicator and the live latency. One stream per browser session, in `gr.State`,
released when the recording stops or the session ends."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
import numpy as np

from api.stream_chunks import ChunkGate
from ui_components.presentation import AUTO_LANGUAGE, CONFIDENCE_COLORS, confidence_label
from ui_components.transcribe_tab import LANGUAGES, model_picker
from utils.streaming.audio_input import StreamFormatError
from utils.streaming.live import LiveSnapshot, LiveStream
from utils.streaming.session import StreamConfig, StreamHub

STREAM_EVERY = 0.1  # seconds per chunk: Gradio's audio component sends 0.1 s whatever is set
IDLE_STATUS = "<div id='live-indicator'>○ Not recording</div>"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{rest:04.1f}"


def _word_html(word: dict[str, Any]) -> str:
    probability = float(word.get("probability", 0.0))
    colour = CONFIDENCE_COLORS[confidence_label(probability)]
    return (
        f"<span class='live-word' title='p={probability:.2f}' "
        f"style='background:{colour}33;border-bottom:2px solid {colour}'>"
        f"{html.escape(word['word'])}</span>"
    )


def _legend() -> str:
    swatches = "".join(
        f"<span style='background:{colour}33;border-bottom:2px solid {colour};margin:0 0.4em'>"
        f"{label}</span>"
        for label, colour in CONFIDENCE_COLORS.items()
    )
    partial = "<span style='color:#9ca3af;font-style:italic;margin-left:0.4em'>partial</span>"
    return f"<div style='font-size:0.85em'>Confidence:{swatches}· not final yet:{partial}</div>"


def render_transcript(snapshot: LiveSnapshot) -> str:
    """Finals as timed lines of confidence-tinted words, then the partial tail in grey italics."""
    lines = []
    for final in snapshot.finals:
        words = "".join(_word_html(w) for w in final["words"]) or html.escape(final["text"])
        lines.append(
            f"<div class='live-final' data-seq='{final['seq']}'>"
            "<span class='live-time' style='color:#6b7280;font-family:monospace;"
            f"margin-right:0.6em'>[{_clock(final['start'])} → {_clock(final['end'])}]</span>"
            f"{words}</div>"
        )
    if snapshot.partial:
        lines.append(
            "<div class='live-partial' style='color:#9ca3af;font-style:italic'>"
            f"{html.escape(snapshot.partial['text'])}</div>"
        )
    return f"<div id='live-lines'>{''.join(lines)}</div>"


def render_status(snapshot: LiveSnapshot | None) -> str:
    """The speaking indicator, the latency figures, and any error, as one line."""
    if snapshot is None:
        return IDLE_STATUS
    if snapshot.error:
        return f"<div id='live-indicator' class='live-error'>⚠ {html.escape(snapshot.error)}</div>"
    state = "● Speaking" if snapshot.speech else "○ Silence"
    if snapshot.finished:
        state = "■ Stopped"
    latency = "–" if snapshot.latency is None else f"{snapshot.latency:.2f} s"
    return (
        f"<div id='live-indicator' data-speech='{str(snapshot.speech).lower()}'>{state}"
        f" · latency {latency} · behind {snapshot.behind:.1f} s</div>"
    )


def _views(stream: LiveStream | None) -> tuple[LiveStream | None, str, str]:
    if stream is None:
        return None, IDLE_STATUS, render_transcript(LiveSnapshot())
    snapshot = stream.snapshot()
    return stream, render_status(snapshot), render_transcript(snapshot)


def release_stream(stream: LiveStream | None) -> None:
    """gr.State's delete callback: the browser session ended."""
    if stream is not None:
        stream.close()


class LiveHandlers:
    """The tab's event handlers over one hub (shared with the WebSocket API); `gate` is told of
    each chunk taken, so the server lets the next one through (api/stream_chunks.py)."""

    def __init__(self, hub: StreamHub, gate: ChunkGate | None = None) -> None:
        self.hub, self.gate = hub, gate or ChunkGate()

    def start(self, model: str, language: str, partials: bool) -> LiveStream:
        config = StreamConfig(
            model=model or None,
            language=None if language in (AUTO_LANGUAGE, "") else language,
            partials=bool(partials),
        )
        return LiveStream(self.hub, config)

    def chunk(
        self,
        audio: tuple[int, np.ndarray] | None,
        stream: LiveStream | None,
        model: str,
        language: str,
        partials: bool,
        request: gr.Request | None = None,
    ) -> tuple[LiveStream | None, str, str]:
        """One microphone chunk: queued for decoding; returns at once with the views."""
        starting = stream is None or stream.stopped
        if not starting:  # the first chunk comes with the event itself, not through the gate
            self.gate.taken(request.session_hash if request else None)
        if audio is None:
            return _views(stream)
        if starting:
            stream = self.start(model, language, partials)
        try:
            stream.push(int(audio[0]), audio[1])
        except StreamFormatError as exc:
            raise gr.Error(f"microphone audio: {exc}") from exc
        return _views(stream)

    def stop(
        self, stream: LiveStream | None, request: gr.Request | None = None
    ) -> tuple[LiveStream | None, str, str]:
        """The recording stopped: the last finals are decoded before the views return, and
        the gate forgets the session's chunk counts (the next recording starts afresh)."""
        if request is not None:
            self.gate.forget(request.session_hash)
        if stream is not None:
            stream.stop()
        return _views(stream)


def build_live_tab(
    hub: StreamHub, gate: ChunkGate, default_model: str | None = None
) -> gr.Dropdown:
    """Render the tab in the current Blocks; returns its model picker (refreshed on select).
    The server must run `OrderedChunksMiddleware` with the same `gate`."""
    handlers = LiveHandlers(hub, gate)
    with gr.Row():
        model = model_picker(default_model)
        language = gr.Dropdown(
            list(LANGUAGES), value=AUTO_LANGUAGE, allow_custom_value=True, label="Language"
        )
        partials = gr.Checkbox(True, label="Show partial text")
    microphone = gr.Audio(
        sources=["microphone"], streaming=True, type="numpy", label="Microphone",
        elem_id="live-microphone",
    )  # fmt: skip
    status = gr.HTML(IDLE_STATUS, elem_id="live-status")
    gr.HTML(_legend())
    transcript = gr.HTML(render_transcript(LiveSnapshot()), elem_id="live-transcript")
    stream = gr.State(None, delete_callback=release_stream)
    views = [stream, status, transcript]
    microphone.stream(
        handlers.chunk,
        [microphone, stream, model, language, partials],
        views,
        stream_every=STREAM_EVERY,
        concurrency_limit=hub.max_sessions,
        concurrency_id="live",
        show_progress="hidden",
    )
    microphone.stop_recording(handlers.stop, [stream], views, show_progress="hidden")
    return model
