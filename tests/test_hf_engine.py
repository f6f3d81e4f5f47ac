"""The transformers engine on real speech: the transcript, token parity with CTranslate2 on the
same log-mel, and the effect of each decoding option."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from tests.speech import prompt_path, silence, white_noise
from utils.audio import SAMPLE_RATE, load_audio
from utils.transcription.options import DecodeOptions, OptionNotSupportedError
from utils.transcription.vocabulary import allowed_token_ids

AGENT = prompt_path("agent-alreadyon")
AGENT_TEXT = (
    "That agent is already logged on. Please enter your agent number followed by the pound key."
)
# Fast and deterministic; word timing costs an extra decoder pass, so only its tests ask for it.
GREEDY = DecodeOptions(beam_size=1, temperature=(0.0,), language="en", word_timestamps=False)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def text_ids(result) -> list[int]:
    return [t for segment in result.segments for t in segment.tokens if t < 50257]


@pytest.fixture(scope="module")
def default_run(hf_engine):
    """Default options (VAD, beam 5, language detection, word timestamps) and progress reports."""
    reports: list[float] = []
    return hf_engine.transcribe(AGENT, progress=reports.append), reports


@pytest.fixture(scope="module")
def greedy_result(hf_engine):
    return hf_engine.transcribe(AGENT, GREEDY)


def run(engine, **changes):
    return engine.transcribe(AGENT, dataclasses.replace(GREEDY, **changes))


# -- (a) the transcript of real speech ---------------------------------------------------------
def test_default_transcript_matches_the_reference(hf_engine, default_run):
    result, reports = default_run
    assert hf_engine.kind == "transformers" and hf_engine.compute_type == "float32"
    assert words(result.text) == words(AGENT_TEXT)
    assert result.language == "en" and result.language_probability > 0.5
    assert result.duration == pytest.approx(5.52, abs=0.05)
    assert result.audio_info.sample_rate == 8000 and result.timings.decode > 0
    assert result.timings.load == hf_engine.load_seconds > 0
    for segment in result.segments:
        assert -1.0 < segment.avg_logprob < 0 and 0 <= segment.no_speech_prob < 0.1
        assert segment.compression_ratio > 0 and segment.temperature == 0.0 and segment.tokens
    assert reports == sorted(reports) and reports[-1] == 1.0
    assert result.to_dict()["segments"][0]["words"]


def test_word_timestamps_are_monotone_within_their_segments(default_run, greedy_result):
    result, _ = default_run
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and len(result.words) == len(words(AGENT_TEXT))
    for segment in result.segments:
        assert "".join(w.word for w in segment.words) == segment.text
        for word in segment.words:
            assert segment.start <= word.start <= word.end <= segment.end
            assert 0 < word.probability <= 1
    assert result.words[-1].end == pytest.approx(5.3, abs=0.4)  # "key." ends with the speech
    assert not greedy_result.words  # GREEDY has word_timestamps=False


# -- (b) parity with CTranslate2 on the same log-mel ---------------------------------------------
def test_greedy_tokens_equal_ctranslate2_on_the_same_log_mel(hf_engine, workspace):
    import ctranslate2

    from utils.transcription.engine import load_engine

    ct2 = load_engine("whisper-base", device="cpu", compute_type="float32")
    audio = load_audio(AGENT)
    mel = hf_engine.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np")
    features = np.ascontiguousarray(mel.input_features, dtype=np.float32)  # (1, 80, 3000)
    tokenizer = hf_engine.tokenizer(GREEDY)
    suppress = hf_engine.suppress_tokens(GREEDY, tokenizer)
    expected = ct2.model.model.generate(
        ctranslate2.StorageView.from_array(features),
        [tokenizer.sot_sequence],
        beam_size=1,
        suppress_blank=True,
        suppress_tokens=suppress,
        max_initial_timestamp_index=50,
    )[0].sequences_ids[0]
    with torch.inference_mode():
        states = hf_engine.model.model.encoder(torch.from_numpy(features)).last_hidden_state
        decoded = hf_engine.generate(states, GREEDY)
    assert list(decoded.tokens) == expected
    assert len(expected) > 5 and tokenizer.timestamp_begin in expected  # text and timestamps


# -- (c) each option's effect --------------------------------------------------------------------
def test_max_new_tokens_truncates_each_window(hf_engine):
    result = run(hf_engine, max_new_tokens=3)
    assert all(len(segment.tokens) <= 3 for segment in result.segments)
    said = words(result.text)
    assert 0 < len(said) < len(words(AGENT_TEXT)) and said == words(AGENT_TEXT)[: len(said)]


def test_language_and_task_change_the_output(hf_engine, greedy_result):
    german = run(hf_engine, language="de")
    translated = run(hf_engine, language="de", task="translate")
    assert german.language == "de" and words(german.text) != words(greedy_result.text)
    assert {"ist", "bitte", "das", "der", "die", "und"} & set(words(german.text))
    assert words(translated.text) == words(AGENT_TEXT)  # translated back into English


def test_initial_prompt_sets_the_style(hf_engine):
    prompt = "that agent is already logged on please enter your agent number"
    result = run(hf_engine, initial_prompt=prompt)
    assert result.text == result.text.lower() and "." not in result.text
    assert words(result.text) == words(AGENT_TEXT)


def test_prompts_follow_condition_hotwords_and_bias_vocabulary(hf_engine, monkeypatch):
    """Two utterances 3 s apart make two VAD windows; record each window's decoder prompt."""
    gap = np.zeros(3 * SAMPLE_RATE, dtype=np.float32)
    audio = np.concatenate(
        [
            load_audio(prompt_path("please-try-again")),
            gap,
            load_audio(prompt_path("one-moment-please")),
        ]
    )
    prompts: list[list[int]] = []
    generate = hf_engine.generate

    def spy(states, options, prompt=(), t=0.0):
        prompts.append(list(prompt))
        return generate(states, options, prompt, t)

    monkeypatch.setattr(hf_engine, "generate", spy)
    tok = hf_engine.tokenizer(GREEDY)
    initial, hot = tok.encode(" Hello there."), tok.encode(" Agent Smith")
    options = dataclasses.replace(GREEDY, initial_prompt="Hello there.", hotwords="Agent Smith")
    result = hf_engine.transcribe(
        audio, dataclasses.replace(options, condition_on_previous_text=True)
    )
    first = [t for s in result.segments if s.window_start == 0.0 for t in s.tokens]
    assert len({s.window_start for s in result.segments}) == 2
    assert prompts == [[tok.sot_prev, *hot, *initial], [tok.sot_prev, *hot, *initial, *first]]
    prompts.clear()
    hf_engine.transcribe(audio, dataclasses.replace(options, hotwords=None, vocabulary=("Smith",)))
    bias = tok.encode(" Smith")
    assert prompts == [[tok.sot_prev, *bias, *initial], [tok.sot_prev, *bias]]


def test_restricted_vocabulary_spells_only_the_listed_words(hf_engine):
    listed = ("agent", "number", "please", "key", "enter", "your")
    result = run(hf_engine, vocabulary=listed, vocabulary_mode="restrict")
    allowed = allowed_token_ids(hf_engine.hf_tokenizer.backend_tokenizer, listed)
    assert text_ids(result) and set(text_ids(result)) <= allowed
    assert set(words(result.text)) <= set(listed)


def test_suppress_tokens_repetition_penalty_and_no_repeat_ngrams(hf_engine, greedy_result):
    period = hf_engine.hf_tokenizer.backend_tokenizer.token_to_id(".")
    assert (
        "." in greedy_result.text and "." not in run(hf_engine, suppress_tokens=(-1, period)).text
    )
    agent = hf_engine.tokenizer(GREEDY).encode(" agent")[0]
    assert text_ids(greedy_result).count(agent) == 2  # "That agent ..., your agent number"
    for changes in ({"no_repeat_ngram_size": 1}, {"repetition_penalty": 5.0}):
        result = run(hf_engine, **changes)
        ids = text_ids(result)
        assert len(ids) == len(set(ids)) and words(result.text) == words(AGENT_TEXT)


def test_temperature_fallback_beam_best_of_and_penalties(hf_engine, monkeypatch):
    """An unreachable log-prob threshold fails every temperature: beam search first, then
    best_of samples, each call carrying the penalties and the token budget; the kept decode
    (the likeliest) is labelled with the last temperature, as faster-whisper does."""
    calls: list[dict] = []
    generate = hf_engine.model.generate

    def spy(**kwargs):  # generate expands encoder_outputs in place: note its batch first
        calls.append({**kwargs, "batch": kwargs["encoder_outputs"].last_hidden_state.shape[0]})
        return generate(**kwargs)

    monkeypatch.setattr(hf_engine.model, "generate", spy)
    torch.manual_seed(0)
    changes = dict(beam_size=2, best_of=3, temperature=(0.0, 0.6), log_prob_threshold=0.0)
    penalties = dict(length_penalty=0.8, repetition_penalty=1.1, no_repeat_ngram_size=4)
    result = run(hf_engine, max_new_tokens=40, **changes, **penalties)
    assert [(c["num_beams"], c["temperature"], c["batch"]) for c in calls] == [
        (2, 0.0, 1),
        (1, 0.6, 3),
    ]
    for call in calls:
        assert {k: call[k] for k in penalties} == penalties and call["max_new_tokens"] == 40
    assert {s.temperature for s in result.segments} == {0.6}
    assert words(result.text) == words(AGENT_TEXT)


def test_fallback_rules_on_scripted_decodes(hf_engine, monkeypatch):
    """decode_with_fallback alone, on scripted decodes: the compression-ratio guard moves on to
    the next temperature; a silent window whose decode is unlikely comes back as None."""
    from utils.transcription.hf_engine import WindowDecode

    ratios = {0.0: 3.0, 0.2: 1.2, 0.4: 1.1}  # temperature -> compression ratio

    def scripted(states, options, prompt=(), t=0.0):
        return WindowDecode((1, 2), -0.5 if t else -2.0, ratios[t], t, False)

    monkeypatch.setattr(hf_engine, "generate", scripted)
    options = dataclasses.replace(GREEDY, temperature=(0.0, 0.2, 0.4))
    assert hf_engine.decode_with_fallback(None, options, (), no_speech=0.1).temperature == 0.2
    strict = dataclasses.replace(options, compression_ratio_threshold=1.0)
    assert hf_engine.decode_with_fallback(None, strict, (), 0.1).temperature == 0.4  # all fail
    assert hf_engine.decode_with_fallback(None, strict, (), 0.1).avg_logprob == -0.5
    silent = dataclasses.replace(options, log_prob_threshold=-1.0, temperature=(0.0,))
    assert hf_engine.decode_with_fallback(None, silent, (), no_speech=0.9) is None
    assert hf_engine.decode_with_fallback(None, silent, (), no_speech=0.1).temperature == 0.0


def test_token_limit_overflow_resplits_the_window(hf_engine, monkeypatch):
    """With a 16-token budget and a 30 s window the 5.5 s span overflows and is re-split at its
    quietest point; the halves still reach the end of the prompt."""
    from utils.transcription import windows

    monkeypatch.setattr(hf_engine, "window_token_limit", 16)
    monkeypatch.setattr(windows, "max_window_seconds", lambda *args, **kwargs: 30.0)
    result = run(hf_engine)
    assert len({s.window_start for s in result.segments}) >= 2
    assert {"that", "key"} <= set(words(result.text))


@pytest.mark.parametrize(
    "changes",
    [
        {"patience": 2.0},
        {"hallucination_silence_threshold": 1.0, "word_timestamps": True},
        {"language": "xx"},
    ],
)
def test_unsupported_options_are_refused_by_name(hf_engine, changes):
    name = next(iter(changes))
    with pytest.raises(OptionNotSupportedError, match=f"{name}.*transformers engine"):
        run(hf_engine, **changes)


# -- (d) no speech -------------------------------------------------------------------------------
@pytest.mark.parametrize("audio", [silence(8.0), white_noise(8.0)], ids=["silence", "noise"])
def test_silence_and_noise_give_no_words(hf_engine, audio):
    result = hf_engine.transcribe(audio)
    assert result.words == () and result.text == ""


def test_no_speech_threshold_skips_a_silent_window(hf_engine):
    """Without VAD, 5 s of silence decodes to a hallucinated word with p(no speech) 0.93; the
    no-speech rule (threshold exceeded and avg_logprob under log_prob_threshold) drops it."""
    options = dataclasses.replace(GREEDY, vad_filter=False, log_prob_threshold=-0.1)
    kept = hf_engine.transcribe(
        silence(5.0), dataclasses.replace(options, no_speech_threshold=None)
    )
    assert kept.text and kept.segments[0].no_speech_prob > 0.8
    assert hf_engine.transcribe(silence(5.0), options).segments == ()


def test_vad_filter_off_decodes_fixed_windows(hf_engine):
    gap = np.zeros(3 * SAMPLE_RATE, dtype=np.float32)
    audio = np.concatenate([load_audio(AGENT), gap, load_audio(prompt_path("please-try-again"))])
    result = hf_engine.transcribe(audio, dataclasses.replace(GREEDY, vad_filter=False))
    assert {s.window_start for s in result.segments} == {0.0}  # one fixed 10 s window
    assert words(result.text) == [*words(AGENT_TEXT), "please", "try", "again"]


def test_cpu_runs_float32_whatever_the_compute_type():
    from utils.transcription.hf_engine import _torch_dtype

    assert _torch_dtype("cpu", "int8") is torch.float32 is _torch_dtype("cpu", "float16")
    assert _torch_dtype("cuda", "int8_float16") is torch.float16
    assert _torch_dtype("cuda", "float32") is torch.float32


def test_a_single_window_decode_encodes_each_window_once(hf_engine, monkeypatch):
    """The tail after a window's last complete segment is not decoded again (live streams)."""
    passes: list[int] = []
    encode = hf_engine.encode
    monkeypatch.setattr(hf_engine, "encode", lambda chunk: passes.append(1) or encode(chunk))
    clip = load_audio(prompt_path("agent-pass"))[: int(1.9 * SAMPLE_RATE)]
    options = dataclasses.replace(
        GREEDY, vad_filter=False, initial_prompt="That agent is already logged on. Please "
        "enter your agent number followed by the pound key. Login incorrect. Please enter",
    )  # fmt: skip
    both = hf_engine.transcribe(clip, options)
    decodes = len(passes)
    one = hf_engine.transcribe(clip, dataclasses.replace(options, single_window=True))
    assert len(passes) - decodes == 1 and one.segments[0].text == both.segments[0].text
