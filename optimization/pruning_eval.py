"""The accuracy and speed trade-off of a pruned Whisper against its source on held-out audio.

`evaluate_tradeoff` decodes the same items with both models through an engine (WER, CER, decode
seconds, RTF, tokens) and times them at equal output (`equal_work_seconds`), because a pruned
model that has not been retrained often loops, and its end-to-end time then measures its longer
output rather than its speed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimization.pruning_calibration import decode_steps, encode
from optimization.pruning_core import Progress, report_progress
from optimization.pruning_files import load_whisper, parameter_count, weights_bytes
from utils.audio import N_SAMPLES, SAMPLE_RATE, AudioInput, load_audio
from utils.model_store import is_transformers_dir
from utils.transcription.engine import Engine
from utils.transcription.options import DecodeOptions
from utils.transcription.results import TranscriptionResult

AudioItem = tuple[AudioInput, str]  # (audio path or 16 kHz float32 samples, reference text)
EngineFactory = Callable[[Path], Engine]


@dataclass(frozen=True)
class ModelFigures:
    """One model on the held-out items. Rates are fractions; seconds are wall-clock, summed over
    the items (audio decoding included)."""

    model_dir: str
    wer: float
    cer: float
    decode_seconds: float  # end to end through the engine
    rtf: float  # decode seconds per audio second
    tokens: int  # generated, timestamps included: a looping model makes many
    equal_work_seconds: float | None  # see `equal_work_seconds`; None outside transformers
    parameters: int | None
    size_bytes: int
    hypotheses: tuple[str, ...]


@dataclass(frozen=True)
class TradeoffReport:
    """The source and the pruned model on the same items; ratios are pruned / source, speedups
    source seconds / pruned seconds."""

    language: str
    n: int
    audio_seconds: float
    source: ModelFigures
    pruned: ModelFigures
    speedup: float  # end to end: output length changes count (a loop makes it < 1)
    equal_work_speedup: float | None  # the networks alone, at the source's output
    parameter_ratio: float | None
    size_ratio: float

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def greedy_options(language: str) -> DecodeOptions:
    """Greedy decoding without the temperature ladder or word alignment: the same kind of work
    for both models, so the timing compares the networks."""
    return DecodeOptions(beam_size=1, temperature=(0.0,), language=language, word_timestamps=False)


def _transformers_engine(model_dir: Path) -> Engine:
    from utils.transcription.hf_engine import TransformersEngine

    return TransformersEngine(model_dir, device="cpu")


def _decode_all(
    engines: Sequence[Engine],
    items: Sequence[AudioItem],
    options: DecodeOptions,
    progress: Progress,
) -> tuple[list[list[TranscriptionResult]], list[float]]:
    """Results and decode seconds per engine. The engines take turns on each item, so a load
    change on a shared machine hits both alike."""
    results: list[list[TranscriptionResult]] = [[] for _ in engines]
    seconds = [0.0] * len(engines)
    for done, (audio, _) in enumerate(items, 1):
        for k, engine in enumerate(engines):
            started = time.perf_counter()
            results[k].append(engine.transcribe(audio, options))
            seconds[k] += time.perf_counter() - started
        report_progress(progress, 0.8 * done / len(items), f"decoded {done}/{len(items)}")
    return results, seconds


def equal_work_seconds(
    model_dirs: Sequence[Path], audios: Sequence[AudioInput], outputs: Sequence[Sequence[int]],
    language: str,
) -> list[float] | None:  # fmt: skip
    """Seconds each transformers model takes to encode each clip's first 30 s and step through the
    same generated tokens `outputs[i]` (the source model's, cut to the decoder's positions), the
    models taking turns per clip. Speed at equal output, unlike end-to-end decoding, where a
    pruned model that loops makes more tokens. None when a directory is not transformers."""
    from transformers import WhisperFeatureExtractor

    if not all(is_transformers_dir(path) for path in model_dirs):
        return None
    models = [load_whisper(path) for path in model_dirs]
    extractor = WhisperFeatureExtractor.from_pretrained(model_dirs[0])
    generation = models[0].generation_config
    prompt = [generation.decoder_start_token_id, generation.lang_to_id[f"<|{language}|>"],
              generation.task_to_id["transcribe"]]  # fmt: skip
    room = models[0].config.max_target_positions - len(prompt)
    seconds = [0.0] * len(models)
    for audio, tokens in zip(audios, outputs, strict=True):
        samples = load_audio(audio)[:N_SAMPLES]
        features = extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        for k, model in enumerate(models):
            started = time.perf_counter()
            decode_steps(model, encode(model, features), prompt, forced=tokens[:room])
            seconds[k] += time.perf_counter() - started
    return seconds


def _figures(model_dir: Path, refs: list[str], results: list[TranscriptionResult],
             language: str, seconds: float, equal: float | None) -> ModelFigures:  # fmt: skip
    from evaluation.scoring import score

    hyps = [result.text for result in results]
    scores = score(refs, hyps, language, bootstrap=0)
    audio_seconds = sum(result.duration for result in results)
    tokens = sum(len(segment.tokens) for result in results for segment in result.segments)
    return ModelFigures(
        str(model_dir), scores.wer, scores.cer, seconds, seconds / max(audio_seconds, 1e-9),
        tokens, equal, parameter_count(model_dir), weights_bytes(model_dir), tuple(hyps),
    )  # fmt: skip


def _compare(language: str, results: list[TranscriptionResult], source: ModelFigures,
             pruned: ModelFigures) -> TradeoffReport:  # fmt: skip
    """The report of both models' figures on the items `results` (the source's) came from."""
    params = source.parameters and pruned.parameters and pruned.parameters / source.parameters
    equal = (source.equal_work_seconds, pruned.equal_work_seconds)
    equal_speedup = equal[0] / max(equal[1], 1e-9) if None not in equal else None
    return TradeoffReport(
        language, len(results), sum(r.duration for r in results), source, pruned,
        speedup=source.decode_seconds / max(pruned.decode_seconds, 1e-9),
        equal_work_speedup=equal_speedup, parameter_ratio=params or None,
        size_ratio=pruned.size_bytes / max(source.size_bytes, 1),
    )  # fmt: skip


def evaluate_tradeoff(
    source_dir: str | Path,
    pruned_dir: str | Path,
    audio_items: Sequence[AudioItem],
    language: str,
    progress: Progress = None,
    *,
    engine_factory: EngineFactory | None = None,
    options: DecodeOptions | None = None,
    warmup: bool = True,
) -> TradeoffReport:
    """WER/CER, decode seconds, RTF and generated tokens of both models on `audio_items`, the
    end-to-end and equal-work speedups, and the parameter and size ratios. `engine_factory`
    loads a directory as an engine (default: the transformers engine on CPU; pass one to
    evaluate CTranslate2 exports). `options` default to `greedy_options(language)`; `warmup`
    decodes the first item once per engine, untimed (first-call costs are not speed)."""
    if not audio_items:
        raise ValueError("evaluate_tradeoff needs at least one (audio, reference) item")
    paths = (Path(source_dir), Path(pruned_dir))
    factory, options = engine_factory or _transformers_engine, options or greedy_options(language)
    report_progress(progress, 0.0, "loading the engines")
    engines = [factory(path) for path in paths]
    for engine in engines if warmup else ():
        engine.transcribe(audio_items[0][0], options)
    results, seconds = _decode_all(engines, audio_items, options, progress)
    del engines  # free both models before the equal-work timing loads them again
    report_progress(progress, 0.8, "timing at equal output")
    outputs = [[t for s in result.segments for t in s.tokens] for result in results[0]]
    audios = [audio for audio, _ in audio_items]
    equal = equal_work_seconds(paths, audios, outputs, language) or [None, None]
    refs = [reference for _, reference in audio_items]
    source, pruned = (
        _figures(paths[k], refs, results[k], language, seconds[k], equal[k]) for k in (0, 1)
    )
    report_progress(progress, 1.0, "done")
    return _compare(language, results[0], source, pruned)
