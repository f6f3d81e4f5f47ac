"""Live streaming under load: N concurrent real-time WebSocket streams against one server.

Real speech (asterisk English prompts joined by pauses) is sent by N clients at once, in real
time, each starting at its own place in the speech (independent speakers do not end utterances
in step; the speech wraps around), as 100 ms pcm16 frames to `app_streaming.py` on loopback
(a separate process, so the clients do not share its interpreter). Per run it reports:
- final latency: from the end of each utterance (known from the joins) to the arrival of the
  final that completes it: p50/p95/p99 over all sessions' utterances;
- the interval between partials while speech lasts (median, p95);
- the server's CPU use (cores busy, from /proc);
- send lag (how late the last frame went out: audio a real microphone would have lost) and
  utterances that never got a final;
- the WER of the streamed finals against the offline transcripts of the same utterances.
Baselines measured in the same script: one plain decode of each utterance (the engine, no
streaming), which also gives the offline transcripts. Targets (issue 7): with one stream p95
final latency <= VAD end-of-speech wait + 1.2 x a plain decode of the utterance; the largest N
with p95 <= 2 s and no lost audio >= 2 with partials, >= 4 finals only; at 10 sessions every
final arrives; streamed WER within 2 points of offline.

Run: `.venv/bin/python bench/stream_bench.py [--quick] [--json OUT]`; exits 0 whatever the
figures (they are for the note).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SR = 16_000
FRAME_SECONDS = 0.1
PAUSE_SECONDS = (1.6, 2.4)  # between utterances (the VAD waits 0.6 s before it ends speech)
LOST_AUDIO_LAG = 1.0  # seconds a sender may fall behind real time before audio counts as lost
SLO_SECONDS = 2.0


@dataclass(frozen=True)
class Speech:
    audio: np.ndarray  # 16 kHz float32 (n,)
    utterances: tuple[tuple[float, float], ...]  # (start, end) seconds of speech in `audio`
    plain_decode: tuple[float, ...]  # seconds: one offline decode of each utterance
    offline: tuple[str, ...]  # the offline transcript of each utterance

    def rotated(self, fraction: float) -> Speech:
        """The same speech started `fraction` of the way in (cut in the middle of the nearest
        pause, wrapping around): independent speakers do not end utterances in step."""
        seconds = self.audio.size / SR
        pauses = [(a[1] + b[0]) / 2 for a, b in zip(self.utterances, self.utterances[1:],
                                                      strict=False)]  # fmt: skip
        if not pauses or fraction == 0:
            return self
        cut = min(pauses, key=lambda p: abs(p - fraction * seconds))
        starts = [start for start, _ in self.utterances]
        order = sorted(range(len(starts)), key=lambda i: (starts[i] < cut, starts[i]))
        moved = [((s - cut) % seconds, (e - cut) % seconds) for s, e in self.utterances]
        return Speech(
            np.roll(self.audio, -round(cut * SR)), tuple(moved[i] for i in order),
            tuple(self.plain_decode[i] for i in order), tuple(self.offline[i] for i in order),
        )  # fmt: skip


@dataclass
class SessionLog:
    speech: Speech
    finals: list[tuple[float, dict]] = field(default_factory=list)  # (arrival clock, event)
    partials: list[float] = field(default_factory=list)  # arrival clocks
    started: float = 0.0
    send_lag: float = 0.0
    error: str | None = None


def _speech_end(samples: np.ndarray) -> float:
    """Seconds to the last sample above a small level (prompts carry a little silence)."""
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    return (loud[-1] + 1) / SR if loud.size else 0.0


def build_speech(count: int) -> Speech:
    from tests.speech import speech_prompts
    from utils.audio import load_audio
    from utils.transcription.engine import load_engine
    from utils.transcription.options import DecodeOptions

    engine = load_engine(None, device="cpu")
    rng = np.random.default_rng(0)
    pieces, utterances, decodes, cursor = [np.zeros(SR // 2, np.float32)], [], [], 0.5
    options = DecodeOptions(language="en", beam_size=1, word_timestamps=True)
    texts = []
    for path, _ in speech_prompts(count, 2.0, 6.0):
        samples = load_audio(path)
        utterances.append((cursor, cursor + _speech_end(samples)))
        started = time.perf_counter()
        texts.append(engine.transcribe(samples, options).text)
        decodes.append(time.perf_counter() - started)
        pause = np.zeros(int(rng.uniform(*PAUSE_SECONDS) * SR), np.float32)
        pieces += [samples, pause]
        cursor += (samples.size + pause.size) / SR
    return Speech(np.concatenate(pieces), tuple(utterances), tuple(decodes), tuple(texts))


# -- the server ------------------------------------------------------------------------------------
def start_server(port: int, max_sessions: int) -> subprocess.Popen:
    command = [sys.executable, "app_streaming.py", "--port", str(port),
               "--max-live-sessions", str(max_sessions)]  # fmt: skip
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("app_streaming.py did not start within 120 s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the clients -----------------------------------------------------------------------------------
async def _listen(socket: Any, log: SessionLog) -> None:
    async for message in socket:
        event, now = json.loads(message), time.monotonic()
        if event["type"] == "final":
            log.finals.append((now, event))
        elif event["type"] == "partial" and event["text"]:
            log.partials.append(now)
        elif event["type"] == "error":
            log.error = event["message"]


async def run_session(url: str, speech: Speech, partials: bool, delay: float) -> SessionLog:
    from websockets.asyncio.client import connect

    log = SessionLog(speech)
    pcm = (np.clip(speech.audio, -1, 1) * 32767).astype("<i2").tobytes()
    await asyncio.sleep(delay)
    async with connect(url, max_size=None, open_timeout=60) as socket:
        await socket.send(json.dumps({"language": "en", "partials": partials}))
        ready = json.loads(await socket.recv())
        if ready["type"] != "ready":
            log.error = ready.get("message", str(ready))
            return log
        listener = asyncio.create_task(_listen(socket, log))
        frame = int(FRAME_SECONDS * SR) * 2
        log.started = time.monotonic()
        for index, first in enumerate(range(0, len(pcm), frame)):
            due = log.started + index * FRAME_SECONDS
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            log.send_lag = max(log.send_lag, time.monotonic() - due)
            await socket.send(pcm[first : first + frame])
        await socket.send(json.dumps({"type": "end"}))
        await asyncio.wait_for(listener, timeout=600)
    return log


# -- the figures -----------------------------------------------------------------------------------
def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def latencies(log: SessionLog) -> tuple[list[float], int]:
    """Seconds from each utterance's end to the first final reaching it; and how many got none."""
    found, missing = [], 0
    for _, end in log.speech.utterances:
        arrivals = [at for at, e in log.finals if e["end"] >= end - 0.4 and e["start"] < end]
        if arrivals:
            found.append(min(arrivals) - (log.started + end))
        else:
            missing += 1
    return found, missing


def partial_intervals(log: SessionLog) -> list[float]:
    gaps = np.diff(log.partials) if len(log.partials) > 1 else np.zeros(0)
    return [float(g) for g in gaps if g < 3 * PAUSE_SECONDS[1]]  # not across pauses


def streamed_text(log: SessionLog) -> str:
    return " ".join(e["text"] for _, e in sorted(log.finals, key=lambda f: f[1]["seq"]))


def summarise(logs: list[SessionLog], wall: float, cpu: float) -> dict:
    from evaluation.scoring import score

    found, missing, gaps = [], 0, []
    for log in logs:
        lat, miss = latencies(log)
        found += lat
        missing += miss
        gaps += partial_intervals(log)
    done = [log for log in logs if not log.error]
    references = [" ".join(log.speech.offline) for log in done]
    texts = [streamed_text(log) for log in done]
    wer = score(references, texts, "en", bootstrap=0).wer if texts else None
    lag = max((log.send_lag for log in logs), default=0.0)
    return {
        "final_latency_p50": _percentile(found, 50), "final_latency_p95": _percentile(found, 95),
        "final_latency_p99": _percentile(found, 99), "missing_finals": missing,
        "partial_interval_median": _percentile(gaps, 50),
        "partial_interval_p95": _percentile(gaps, 95),
        "cpu_cores_busy": cpu / wall, "max_send_lag": lag, "lost_audio": lag > LOST_AUDIO_LAG,
        "errors": [log.error for log in logs if log.error], "streamed_wer_vs_offline": wer,
    }  # fmt: skip


async def run_load(url: str, speech: Speech, sessions: int, partials: bool) -> list[SessionLog]:
    """`sessions` clients at once, each starting at its own place in the speech."""
    runs = [run_session(url, speech.rotated(i / sessions), partials, 0.05 * i)
            for i in range(sessions)]  # fmt: skip
    return list(await asyncio.gather(*runs))


def measure(port: int, pid: int, speech: Speech, sessions: int, partials: bool) -> dict:
    url = f"ws://127.0.0.1:{port}/ws/transcribe"
    cpu, started = cpu_seconds(pid), time.monotonic()
    logs = asyncio.run(run_load(url, speech, sessions, partials))
    wall = time.monotonic() - started
    figures = summarise(logs, wall, cpu_seconds(pid) - cpu)
    return {"sessions": sessions, "partials": partials, **figures}


def _line(row: dict) -> str:
    def fmt(value: Any) -> str:
        return "   -  " if value is None else f"{value:6.2f}"

    return (f"N={row['sessions']:2d} partials={'on ' if row['partials'] else 'off'} "
            f"p50 {fmt(row['final_latency_p50'])} p95 {fmt(row['final_latency_p95'])} "
            f"p99 {fmt(row['final_latency_p99'])} s | partial every "
            f"{fmt(row['partial_interval_median'])} s | cpu {row['cpu_cores_busy']:.2f} cores | "
            f"send lag {row['max_send_lag']:.2f} s | missing {row['missing_finals']} | "
            f"WER vs offline {fmt(row['streamed_wer_vs_offline'])}")  # fmt: skip


def largest_within_slo(rows: list[dict], partials: bool) -> int:
    ok = [r["sessions"] for r in rows if r["partials"] == partials and not r["lost_audio"]
          and not r["missing_finals"]
          and (r["final_latency_p95"] or 99) <= SLO_SECONDS]  # fmt: skip
    return max(ok, default=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer prompts and loads")
    parser.add_argument("--port", type=int, default=7987)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    from utils.workspace import WORKSPACE_ENV

    os.environ.setdefault(WORKSPACE_ENV, str(ROOT / "workspace"))
    speech = build_speech(3 if args.quick else 6)
    plain = statistics.median(speech.plain_decode)
    print(f"speech: {speech.audio.size / SR:.1f} s, {len(speech.utterances)} utterances; "
          f"plain decode of one utterance: median {plain:.2f} s")  # fmt: skip
    loads = [(1, True), (2, True), (1, False), (4, False), (10, False)] if args.quick else [
        (1, True), (2, True), (3, True), (4, True), (1, False), (2, False), (4, False),
        (6, False), (8, False), (10, False)]  # fmt: skip
    server = start_server(args.port, max_sessions=10)
    rows = []
    try:
        for sessions, partials in loads:
            rows.append(measure(args.port, server.pid, speech, sessions, partials))
            print(_line(rows[-1]), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    single = next(r for r in rows if r["sessions"] == 1 and r["partials"])
    target = 0.6 + 1.2 * plain
    ten = next((r for r in rows if r["sessions"] == 10), None)
    verdict = {
        "plain_decode_median": plain, "single_stream_target": target,
        "single_stream_p95": single["final_latency_p95"],
        "largest_n_partials": largest_within_slo(rows, True),
        "largest_n_finals_only": largest_within_slo(rows, False),
        "ten_sessions_missing_finals": None if ten is None else ten["missing_finals"],
    }  # fmt: skip
    print(f"one stream: p95 {single['final_latency_p95']:.2f} s vs target {target:.2f} s "
          f"(0.6 s VAD wait + 1.2 x {plain:.2f} s)")  # fmt: skip
    print(
        f"largest N with p95 <= {SLO_SECONDS} s and no lost audio: partials on "
        f"{verdict['largest_n_partials']}, finals only {verdict['largest_n_finals_only']}"
    )
    if ten is not None:
        print(f"10 sessions: {ten['missing_finals']} utterances without a final")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "verdict": verdict}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
