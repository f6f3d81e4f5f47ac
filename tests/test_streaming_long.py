"""Hours-long live streams stay bounded (issue 7): two hours of real English speech streamed as
fast as possible through one `StreamSession` on the real default model (Whisper base, CTranslate2
int8, CPU) keep memory, per-update work and timestamps where they were after twenty minutes.

The stream is 24 blocks of 5 minutes, made lazily, 0.5 s pcm16 frame by frame (two hours of
float32 would be 460 MB): a quiet part (digital silence, then low white noise) and then about a
minute of speech that ends with the block: utterances of one to three prompts with pauses of
0.8-2.5 s, the 8 `english_heldout` prompts cycled in shuffled order (seeded). In about half the
blocks (of each kind below) the first utterance is 40-60 s of unbroken speech (prompts back to
back: their own quiet edges are shorter than the VAD's 0.6 s end wait), so the buffer reaches its
caps and is cut again and again.

Runtime: a decode costs about 1-1.3 s on two CPU cores whatever the buffer's length (Whisper pads
every window to 30 s), so partials every second of two hours of speech would take hours. The
session's options change between blocks (at a block's speech, after its quiet part):
- the first and the last block: the Live tab's options (partials every 1 s of new audio);
- odd blocks: finals only (`partials=False`: decoded at the caps and at each end of speech);
- the other even blocks: partials every 5 s (`update_seconds=5`).
About 25 minutes of the two hours are speech; the test takes about 8 to 9 minutes here.

What is checked: at every frame the buffer, the committed words, the agreement's lists, the VAD's
lists and the session's arrival times stay under their caps (the buffer and each decode's audio:
the buffer cap plus CATCH_UP_SECONDS, in every mode);
the process's RSS stays within RSS_GROWTH of its value after 20 minutes; the median decode time
of the last 20 minutes is within DECODE_RATIO of the first 20 minutes'; finals are numbered 1, 2,
3... with non-decreasing word times, each word inside a planned utterance (absolute times that do
not drift over two hours) and every utterance heard; the last final ends with the last utterance;
the last 20 minutes' text is as right as the first's. `pytest -s` prints the figures.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil
import pytest

from evaluation.scoring import score
from optimization.heldout_sets import HeldoutSet, english_heldout
from utils.audio import SAMPLE_RATE
from utils.streaming.agreement import MAX_OVERLAP_WORDS
from utils.streaming.session import ARRIVALS_KEPT, CATCH_UP_SECONDS, StreamConfig, StreamSession
from utils.streaming.transcriber import (
    KEPT_WORDS,
    PROMPT_WORDS,
    SILENCE_KEPT,
    StreamingTranscriber,
    StreamOptions,
)
from utils.streaming.turns import EngineTurns

pytestmark = pytest.mark.slow

BLOCK_SECONDS = 300
BLOCKS = 24  # two hours
WINDOW_SECONDS = 1200  # the first and the last 20 minutes are compared
FRAME = SAMPLE_RATE // 2  # samples per frame (0.5 s)
SPEECH_SECONDS = 60.0  # speech and pauses per block, at least
LONG_SPEECH = (40.0, 60.0)  # seconds of unbroken speech opening about half the blocks
PAUSE = (0.8, 2.5)  # seconds between utterances

LIVE = StreamOptions(language="en")  # what the Live tab and the WebSocket use
FINALS_ONLY = dataclasses.replace(LIVE, partials=False)
SPARSE = dataclasses.replace(LIVE, update_seconds=5.0)
MODES = {"live": LIVE, "finals": FINALS_ONLY, "sparse": SPARSE}

# Thresholds, from measurement (see the printed figures): RSS after minute 20 moved within
# -2..+17 MB of its value then, block to block (allocator noise: CTranslate2's and numpy's
# buffers), with no trend. A leak of one 0.5 s frame per frame would add 230 MB, of a word's
# objects per word a few MB at least; 40 MB leaves room for the noise.
RSS_GROWTH = 40 * 2**20
DECODE_RATIO = 1.5  # median decode time, last 20 minutes / first 20 minutes
WER_DRIFT = 0.10  # the last 20 minutes' WER may exceed the first's by at most this
MAX_WER = 0.30
TIME_SLACK = 1.0  # seconds a final word may lie outside the utterance that holds it


@dataclass(frozen=True)
class Quiet:
    samples: int
    noise: float  # white noise level; 0: digital silence


@dataclass(frozen=True)
class Utterance:
    start: float  # seconds of the stream, the prompts' own quiet edges included
    end: float
    text: str
    block: int


@dataclass
class Block:
    index: int
    mode: str  # a key of MODES
    quiet: list[Quiet] = field(default_factory=list)
    speech: list[np.ndarray | Quiet] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)

    @property
    def start(self) -> float:
        return self.index * BLOCK_SECONDS

    @property
    def options(self) -> StreamOptions:
        return MODES[self.mode]


def block_mode(index: int, blocks: int) -> str:
    if index in (0, blocks - 1):
        return "live"
    return "finals" if index % 2 else "sparse"


def speech_section(
    rng: np.random.Generator, prompts: Iterator[tuple[np.ndarray, str]], long: bool
) -> tuple[list[np.ndarray | Quiet], list[tuple[int, int, str]], int]:
    """About SPEECH_SECONDS of utterances and pauses, the first one unbroken LONG_SPEECH if
    `long`: (pieces, (start, end, text) in samples from the section's start, its length)."""
    pieces: list[np.ndarray | Quiet] = []
    spans: list[tuple[int, int, str]] = []
    at, seconds = 0, rng.uniform(*LONG_SPEECH) if long else 0.1
    while at < SPEECH_SECONDS * SAMPLE_RATE:
        start, words = at, []
        while at - start < seconds * SAMPLE_RATE:
            audio, text = next(prompts)
            pieces.append(audio)
            words.append(text)
            at += audio.size
        spans.append((start, at, " ".join(words)))
        pause = round(rng.uniform(*PAUSE) * SAMPLE_RATE)
        pieces.append(Quiet(pause, float(rng.choice([0.0, 0.002]))))
        at += pause
        seconds = 0.1 if rng.random() < 0.5 else 5.0  # one prompt, or two or three
    return pieces, spans, at


def plan_stream(heldout: HeldoutSet, blocks: int, seed: int = 0) -> list[Block]:
    """The stream's layout: pieces refer to the prompts' arrays, nothing is copied yet."""
    rng = np.random.default_rng(seed)
    pairs = list(zip(heldout.audios, heldout.references, strict=True))
    prompts = (pairs[i] for _ in itertools.count() for i in rng.permutation(len(pairs)))
    plan = []
    for index in range(blocks):
        block = Block(index, block_mode(index, blocks))
        long = index % 4 < 2 or index == blocks - 1  # both kinds of block, and the last
        block.speech, spans, length = speech_section(rng, prompts, long)
        quiet = BLOCK_SECONDS * SAMPLE_RATE - length
        silent = round(quiet * rng.uniform(0.3, 0.7))
        block.quiet = [Quiet(silent, 0.0), Quiet(quiet - silent, float(rng.uniform(0.001, 0.004)))]
        offset = block.start + quiet / SAMPLE_RATE
        block.utterances = [Utterance(offset + s / SAMPLE_RATE, offset + e / SAMPLE_RATE, t, index)
                            for s, e, t in spans]  # fmt: skip
        plan.append(block)
    return plan


def frames(pieces: list[np.ndarray | Quiet], rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The pieces as 0.5 s float32 frames (the last may be shorter), quiet made on the fly."""
    held: list[np.ndarray] = []
    size = 0
    for piece in pieces:
        if isinstance(piece, np.ndarray):
            chunks: Iterator[np.ndarray] = iter((piece,))
        else:
            lengths = [FRAME] * (piece.samples // FRAME) + [piece.samples % FRAME]
            chunks = ((piece.noise * rng.standard_normal(n)).astype(np.float32) for n in lengths)
        for chunk in chunks:
            while chunk.size:
                take = min(FRAME - size, chunk.size)
                held.append(chunk[:take])
                size, chunk = size + take, chunk[take:]
                if size == FRAME:
                    yield np.concatenate(held)
                    held, size = [], 0
    if held:
        yield np.concatenate(held)


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class TimedEngine:
    """The engine, with each decode's stream time, audio seconds and wall time logged."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.stream: StreamingTranscriber | None = None
        self.log: list[tuple[float, float, float]] = []  # (stream seconds, audio seconds, wall)
        self.longest_prompt = 0

    def transcribe(self, samples: np.ndarray, options: Any) -> Any:
        started = time.perf_counter()
        result = self.engine.transcribe(samples, options)
        wall = time.perf_counter() - started
        assert self.stream is not None
        self.log.append((self.stream.now, samples.size / SAMPLE_RATE, wall))
        prompt = len((options.initial_prompt or "").split())
        self.longest_prompt = max(self.longest_prompt, prompt)
        return result


@dataclass
class Measures:
    """What the stream showed; maxima are over every frame."""

    rss: dict[float, int] = field(default_factory=dict)  # stream seconds -> bytes
    buffer: dict[str, float] = field(default_factory=dict)  # mode (or "quiet") -> seconds
    committed: int = 0
    arrivals: int = 0
    agreement_tail: int = 0
    agreement_previous: int = 0
    vad_possible_ends: int = 0
    finals: int = 0
    partials: dict[int, int] = field(default_factory=dict)  # block -> partials with text
    last_seq: int = 0
    last_start: float = 0.0
    last_end: float = 0.0
    worst_offset: float = 0.0  # seconds a final word lay outside every utterance
    text: dict[int, list[str]] = field(default_factory=dict)  # block -> final texts
    heard: list[int] = field(default_factory=list)  # final words per planned utterance
    wall: float = 0.0


def stream(engine: Any, plan: list[Block], seed: int = 1) -> tuple[Measures, TimedEngine]:
    """Feed the planned stream to one session; check the per-frame bounds and the finals."""
    timed = TimedEngine(engine)
    session = StreamSession(StreamConfig(language="en"), timed, EngineTurns())
    transcriber = timed.stream = session.transcriber
    utterances = [u for block in plan for u in block.utterances]
    starts = [u.start for u in utterances]
    rng, m = np.random.default_rng(seed), Measures(heard=[0] * len(utterances))
    process = psutil.Process()
    began, mode = time.perf_counter(), "live"

    def nearest(t: float) -> tuple[int, float]:
        """The utterance nearest stream time `t`, and how far `t` lies outside it (seconds)."""
        after = bisect_right(starts, t)
        return min(((i, max(0.0, utterances[i].start - t, t - utterances[i].end))
                    for i in (after - 1, after) if 0 <= i < len(utterances)),
                   key=lambda pair: pair[1])  # fmt: skip

    def take(events: list[dict[str, Any]], block: int) -> None:
        for event in events:
            if event["type"] == "partial" and event["text"]:  # (an empty one clears the tail)
                m.partials[block] = m.partials.get(block, 0) + 1
            if event["type"] != "final":
                continue
            assert event["seq"] == m.last_seq + 1, (event["seq"], m.last_seq)
            m.last_seq, m.finals, m.last_end = event["seq"], m.finals + 1, event["end"]
            owners = []
            for word in event["words"]:
                assert word["start"] >= m.last_start - 1e-6 and word["end"] >= word["start"], word
                m.last_start = word["start"]
                index, offset = nearest((word["start"] + word["end"]) / 2)
                m.worst_offset = max(m.worst_offset, offset)
                m.heard[index] += 1
                owners.append(utterances[index].block)
            m.text.setdefault(owners[0], []).append(event["text"])

    def check(mode: str) -> None:
        key = mode if transcriber.speaking else "quiet"  # outside speech: SILENCE_KEPT
        m.buffer[key] = max(m.buffer.get(key, 0.0), transcriber._buffer.size / SAMPLE_RATE)
        m.committed = max(m.committed, len(transcriber._committed))
        m.arrivals = max(m.arrivals, len(session._arrivals))
        m.agreement_tail = max(m.agreement_tail, len(transcriber._agreement.committed_tail))
        m.agreement_previous = max(m.agreement_previous, len(transcriber._agreement.previous))
        m.vad_possible_ends = max(
            m.vad_possible_ends, len(transcriber._vad._segmenter.possible_ends)
        )

    for block in plan:
        for part, pieces in (("quiet", block.quiet), ("speech", block.speech)):
            if part == "speech":
                transcriber.options, mode = block.options, block.mode
            for frame in frames(pieces, rng):
                before = transcriber.now
                take(session.feed_frames([(pcm16(frame), time.monotonic())]), block.index)
                check(mode)
                if before < WINDOW_SECONDS <= transcriber.now:
                    m.rss[transcriber.now] = process.memory_info().rss
        m.rss[transcriber.now] = process.memory_info().rss
    take(session.finish(), plan[-1].index)
    m.rss[transcriber.now] = process.memory_info().rss
    m.wall = time.perf_counter() - began
    return m, timed


def window_wer(plan: list[Block], m: Measures, blocks: range) -> float:
    references = [" ".join(u.text for u in plan[b].utterances) for b in blocks]
    hypotheses = [" ".join(m.text.get(b, [])) for b in blocks]
    return score(references, hypotheses, "en", bootstrap=0).wer


def test_a_two_hour_stream_stays_bounded(engine):
    plan = plan_stream(english_heldout(8), BLOCKS)
    total = BLOCKS * BLOCK_SECONDS
    m, timed = stream(engine, plan)

    window = WINDOW_SECONDS // BLOCK_SECONDS
    first, last = range(window), range(BLOCKS - window, BLOCKS)
    decodes_first = [w for t, _, w in timed.log if t <= WINDOW_SECONDS]
    decodes_last = [w for t, _, w in timed.log if t > total - WINDOW_SECONDS]
    rss_window = next(v for t, v in m.rss.items() if t >= WINDOW_SECONDS)
    rss_end = m.rss[max(m.rss)]
    rss_after = [v for t, v in m.rss.items() if t >= WINDOW_SECONDS]
    wer_first, wer_last = window_wer(plan, m, first), window_wer(plan, m, last)
    speech = sum(u.end - u.start for b in plan for u in b.utterances)
    mb = 2**20
    buffers = {k: round(v, 2) for k, v in m.buffer.items()}
    print(
        f"\n{total / 3600:.1f} h stream ({speech / 60:.0f} min in utterances), wall "
        f"{m.wall:.0f} s; {len(timed.log)} decodes, {m.finals} finals, "
        f"{sum(m.partials.values())} partials"
        f"\nRSS at {WINDOW_SECONDS // 60} min {rss_window / mb:.1f} MB, at the end "
        f"{rss_end / mb:.1f} MB (growth {(rss_end - rss_window) / mb:+.1f} MB, largest after "
        f"{WINDOW_SECONDS // 60} min {max(rss_after) / mb:.1f} MB)"
        f"\nRSS per block (MB): {[round(v / mb) for v in m.rss.values()]}"
        f"\nmedian decode: first 20 min {statistics.median(decodes_first):.3f} s "
        f"({len(decodes_first)}), last 20 min {statistics.median(decodes_last):.3f} s "
        f"({len(decodes_last)}); longest decoded audio {max(s for _, s, _ in timed.log):.1f} s, "
        f"longest prompt {timed.longest_prompt} words"
        f"\nmaxima: committed {m.committed}, arrivals {m.arrivals}, agreement tail "
        f"{m.agreement_tail} / previous {m.agreement_previous}, VAD possible ends "
        f"{m.vad_possible_ends}; largest buffer (s) {buffers}"
        f"\nutterances {len(m.heard)} (none without final words: {all(m.heard)}); "
        f"WER first 20 min {wer_first:.3f}, last 20 min {wer_last:.3f}; worst word offset "
        f"{m.worst_offset:.2f} s; last final ends at {m.last_end:.2f} s, last utterance at "
        f"{plan[-1].utterances[-1].end:.2f} s"
    )

    # Memory: every cap held at every frame, and the process did not grow after 20 minutes.
    frame = FRAME / SAMPLE_RATE
    for mode, options in MODES.items():
        assert m.buffer[mode] <= options.max_buffer_seconds + CATCH_UP_SECONDS, mode
    assert m.buffer["quiet"] <= SILENCE_KEPT + frame
    assert m.committed <= KEPT_WORDS and m.arrivals <= ARRIVALS_KEPT * SAMPLE_RATE / FRAME + 2
    assert m.agreement_tail <= MAX_OVERLAP_WORDS and m.agreement_previous <= 100
    longest = max(u.end - u.start for b in plan for u in b.utterances)
    assert m.vad_possible_ends <= longest / 0.098  # one per pause over 98 ms in a speech span
    assert rss_end - rss_window < RSS_GROWTH and max(rss_after) - rss_window < RSS_GROWTH
    # Work per update: the audio decoded stays under the caps, its time does not creep up.
    assert max(s for _, s, _ in timed.log) <= LIVE.max_buffer_seconds + CATCH_UP_SECONDS
    assert timed.longest_prompt <= PROMPT_WORDS * 2  # words of up to PROMPT_WORDS tokens
    assert statistics.median(decodes_last) < DECODE_RATIO * statistics.median(decodes_first)
    # Correctness does not drift: absolute times stay in their utterances to the end, and the
    # last 20 minutes read as well as the first.
    assert m.finals == m.last_seq and all(m.heard), "an utterance gave no final word"
    assert m.worst_offset <= TIME_SLACK
    assert abs(m.last_end - plan[-1].utterances[-1].end) <= TIME_SLACK
    assert all(m.partials.get(b.index) for b in plan if b.options.partials)
    assert not any(m.partials.get(b.index) for b in plan if not b.options.partials)  # with text
    assert wer_last <= MAX_WER and wer_last <= wer_first + WER_DRIFT, (wer_first, wer_last)


def test_finals_only_unbroken_speech_is_made_final_at_the_cap(engine):
    """A minute of unbroken speech with `partials=False`: decoded and made final each time the
    buffer nears its cap, not once at the end of speech."""
    heldout = english_heldout(8)
    talk = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), *heldout.audios, *heldout.audios,
                           np.zeros(3 * SAMPLE_RATE, np.float32)])  # fmt: skip
    transcriber = StreamingTranscriber(engine, FINALS_ONLY)
    longest, finals = 0.0, []
    for first in range(0, talk.size, FRAME):
        events = transcriber.feed(talk[first : first + FRAME])
        finals += [e for e in events if e.kind == "final"]
        longest = max(longest, transcriber._buffer.size / SAMPLE_RATE)
    finals += [e for e in transcriber.finish() if e.kind == "final"]
    assert longest <= FINALS_ONLY.max_buffer_seconds + CATCH_UP_SECONDS, longest
    assert len(finals) >= 4  # 58 s of speech
    streamed = " ".join(e.text for e in finals)
    reference = " ".join(heldout.references * 2)
    assert score([reference], [streamed], "en", bootstrap=0).wer <= 0.15, streamed
