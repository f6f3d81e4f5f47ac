"""Every `DecodeOptions` field, shown to have its own effect on the faster-whisper engine.

Each test decodes a short real prompt (greedy, one temperature, no word timings unless the option
needs them) and checks what the option specifically changes: the text, the segments, the prompt
or generation settings CTranslate2 receives (a spy stands in for the CTranslate2 model), the
audio the decoder sees, or the windows the engine cuts. Invalid values raise `ValueError`.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections import Counter

import numpy as np
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from tests.speech import prompt_path, silence, white_noise
from utils.audio import SAMPLE_RATE, load_audio
from utils.transcription import DecodeOptions
from utils.transcription.vocabulary import allowed_token_ids
from utils.transcription.windows import WINDOW_TOKEN_LIMIT, fixed_windows, max_window_seconds
from utils.vad import VadOptions

normalize = EnglishTextNormalizer()
FAST = DecodeOptions(language="en", beam_size=1, word_timestamps=False, temperature=(0.0,))
AGENT = "agent-alreadyon"  # That agent is already logged on. Please enter your agent number ...
# The base model hears "conference" here as "ComFriends" (a word to correct with a bias).
CONFERENCE = "confbridge-only-participant"  # You are currently the only participant in the ...
RESPLIT_PROMPTS = {  # prompt -> a word of it the base model gets right, in order
    "agent-loginok": "logged",
    "agent-newlocation": "extension",
    "agent-pass": "password",
    "all-circuits-busy-now": "circuits",
    "astcc-followed-by-the-pound-key": "pound",
    "at-tone-time-exactly": "exactly",
    "call-fwd-no-ans": "answer",
    "call-fwd-on-busy": "busy",
}


# -- helpers -----------------------------------------------------------------------------------
def _decode(engine, audio, **changes):
    return engine.transcribe(audio, dataclasses.replace(FAST, **changes))


def _words(text: str) -> list[str]:
    return normalize(text).split()


def _token(engine, text: str) -> int:
    token = engine.model.hf_tokenizer.token_to_id(text)
    assert token is not None, text
    return token


class _GenerateSpy:
    """Stands in for the CTranslate2 Whisper model and records every `generate` call."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[tuple[list[int], dict]] = []  # (prompt, keyword arguments)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, features, prompts, **kwargs):
        self.calls.extend((list(prompt), kwargs) for prompt in prompts)
        return self.inner.generate(features, prompts, **kwargs)


def _spy_generate(engine, monkeypatch) -> _GenerateSpy:
    spy = _GenerateSpy(engine.model.model)
    monkeypatch.setattr(engine.model, "model", spy)
    return spy


def _spy_decode_clips(engine, monkeypatch) -> list:
    """The `clips` argument of each `engine._decode` call (None: the whole file at once)."""
    calls = []
    original = engine._decode

    def spy(samples, options, progress, clips):
        calls.append(clips)
        return original(samples, options, progress, clips)

    monkeypatch.setattr(engine, "_decode", spy)
    return calls


def _spy_decoded_seconds(engine, monkeypatch) -> list[float]:
    """Seconds of audio handed to faster-whisper's feature extractor (what the encoder sees)."""
    seen = []
    extractor = engine.model.feature_extractor

    class Extractor:
        def __getattr__(self, name):
            return getattr(extractor, name)

        def __call__(self, audio, *args, **kwargs):
            seen.append(audio.shape[-1] / SAMPLE_RATE)
            return extractor(audio, *args, **kwargs)

    monkeypatch.setattr(engine.model, "feature_extractor", Extractor())
    return seen


def _window_tokens(result) -> dict[float, list[int]]:
    """The generated tokens of each decoder window, in order."""
    windows: dict[float, list[int]] = {}
    for segment in result.segments:
        windows.setdefault(segment.window_start, []).extend(segment.tokens)
    return windows


def _text_tokens(engine, result) -> list[int]:
    """The result's text tokens (no timestamps), all segments together."""
    end_of_text = _token(engine, "<|endoftext|>")
    return [t for s in result.segments for t in s.tokens if t < end_of_text]


def _contains(sequence: list[int], part: list[int]) -> bool:
    return any(sequence[i : i + len(part)] == part for i in range(len(sequence) - len(part) + 1))


def _repeated_ngrams(tokens: list[int], n: int = 3) -> int:
    grams = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return sum(count - 1 for count in grams.values())


def _in_order(keywords: list[str], text: str) -> list[str]:
    """The keywords NOT found in `text` in the given order (spaces ignored: 'log in' = 'login')."""
    flat, position, missing = normalize(text).replace(" ", ""), 0, []
    for word in keywords:
        found = flat.find(word, position)
        if found < 0:
            missing.append(word)
        else:
            position = found + len(word)
    return missing


# -- shared audio and reference decodes --------------------------------------------------------
@pytest.fixture(scope="module")
def agent():
    return load_audio(prompt_path(AGENT))


@pytest.fixture(scope="module")
def plain(engine, agent):
    """The reference decode of the agent prompt with `FAST`, and its CTranslate2 calls."""
    spy = _GenerateSpy(engine.model.model)
    engine.model.model = spy
    try:
        result = engine.transcribe(agent, FAST)
    finally:
        engine.model.model = spy.inner
    assert _words(result.text) == _words(
        "That agent is already logged on. Please enter your agent number followed by the pound key."
    )
    return result, spy.calls


@pytest.fixture(scope="module")
def conference_plain(engine):
    result = _decode(engine, prompt_path(CONFERENCE))
    assert "comfriends" in _words(result.text)  # the mistake the bias tests correct
    return result


@pytest.fixture(scope="module")
def looping(agent):
    """The agent prompt twice over (11 s): a decode that repeats itself."""
    return np.concatenate([agent, silence(0.3), agent])


@pytest.fixture(scope="module")
def looping_plain(engine, looping):
    result = _decode(engine, looping, vad_filter=False)
    assert _repeated_ngrams(_window_tokens(result)[0.0]) > 10  # the sentence comes back twice
    return result


@pytest.fixture(scope="module")
def ghost():
    """3 s silence, 4 s white noise, 3 s silence: the base model hears a word in it."""
    return np.concatenate([silence(3), white_noise(4, level=0.05), silence(3)])


GHOST_OPTIONS = dict(vad_filter=False, word_timestamps=True, no_speech_threshold=None)


@pytest.fixture(scope="module")
def ghost_plain(engine, ghost):
    """The noise decoded with every guard off: a hallucinated segment."""
    result = _decode(engine, ghost, **GHOST_OPTIONS)
    assert result.segments, "no hallucination to guard against"
    return result


@pytest.fixture(scope="module")
def padded_noisy(agent):
    """The agent prompt with 8 s of faint white noise (-40 dBFS) before and after it."""
    return np.concatenate([white_noise(8, level=0.01), agent, white_noise(8, level=0.01, seed=1)])


# -- invalid values ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"beam_size": 0}, "beam_size and best_of must be at least 1"),
        ({"best_of": 0}, "beam_size and best_of must be at least 1"),
        ({"temperature": ()}, "temperature needs at least one value"),
        ({"temperature": (0.0, -0.2)}, "none negative"),
        ({"vocabulary_mode": "x"}, "vocabulary_mode must be 'bias' or 'restrict'"),
        (
            {"hallucination_silence_threshold": 1.0, "word_timestamps": False},
            "hallucination_silence_threshold needs word_timestamps=True",
        ),
        ({"task": "summarize"}, "task must be 'transcribe' or 'translate'"),
        ({"patience": 0}, "patience must be positive"),
        ({"repetition_penalty": 0}, "repetition_penalty must be positive"),
        ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size must be 0"),
        ({"max_new_tokens": 0}, "max_new_tokens must be between 1 and 224"),
    ],
)
def test_invalid_values_raise_a_clear_value_error(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DecodeOptions(**changes)


def test_invalid_vad_options_raise_a_clear_value_error():
    with pytest.raises(ValueError, match="invalid VAD options"):
        VadOptions(threshold=1.5)


def test_several_problems_are_reported_together():
    with pytest.raises(ValueError, match=r"beam_size.*; temperature"):
        DecodeOptions(beam_size=0, temperature=())


# -- task and language -------------------------------------------------------------------------
def test_task_translate_asks_for_the_translate_task(engine, plain, agent, monkeypatch):
    _, plain_calls = plain
    transcribe, translate = _token(engine, "<|transcribe|>"), _token(engine, "<|translate|>")
    assert engine.transcribe_kwargs(DecodeOptions(task="translate"))["task"] == "translate"
    assert transcribe in plain_calls[0][0] and translate not in plain_calls[0][0]
    spy = _spy_generate(engine, monkeypatch)
    result = _decode(engine, agent, task="translate")
    assert spy.calls and all(translate in prompt for prompt, _ in spy.calls)
    assert all(transcribe not in prompt for prompt, _ in spy.calls)
    assert "agent" in _words(result.text)  # English speech translates to English


@pytest.fixture(scope="module")
def german(tmp_path_factory):
    """German speech synthesized by espeak-ng (no German recordings ship with the test data)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("german") / "de.wav"
    text = "Guten Morgen. Ich möchte heute mit dem Zug nach Berlin fahren."
    subprocess.run([espeak, "-v", "de", "-w", str(path), text], check=True, timeout=60)
    return path


def test_task_translate_turns_german_speech_into_english(engine, german):
    transcribed = _decode(engine, german, language=None)
    translated = _decode(engine, german, language="de", task="translate")
    assert transcribed.language == "de"
    heard, english = set(_words(transcribed.text)), set(_words(translated.text))
    assert {"guten", "morgen", "berlin"} <= heard
    # The base model translates espeak's robotic German loosely, but into English words.
    assert {"good", "morning"} <= english and len(english & {"the", "it", "with", "to"}) >= 2
    assert not english & (heard - {"berlin"})


def test_language_forced_skips_detection_and_decodes_in_that_language(
    engine, plain, agent, monkeypatch
):
    plain_result, plain_calls = plain
    detections = []
    detect = engine.detect_language
    monkeypatch.setattr(engine, "detect_language", lambda *a: detections.append(1) or detect(*a))
    spy = _spy_generate(engine, monkeypatch)
    forced = _decode(engine, agent, language="de")
    assert detections == []  # a forced language is not detected
    assert forced.language == "de" and forced.language_probability == 1.0
    assert _token(engine, "<|de|>") in spy.calls[0][0]
    assert _token(engine, "<|en|>") in plain_calls[0][0]
    assert forced.text != plain_result.text
    detected = _decode(engine, agent, language=None)
    assert detections == [1] and detected.language == "en"
    assert 0.5 < detected.language_probability <= 1.0


# -- search: beam, patience, length penalty, temperature, best_of ------------------------------
def test_beam_size_reaches_the_decoder(engine, plain, agent, monkeypatch):
    plain_result, plain_calls = plain
    assert plain_calls[0][1]["beam_size"] == 1
    spy = _spy_generate(engine, monkeypatch)
    result = _decode(engine, agent, beam_size=5)
    assert [kwargs["beam_size"] for _, kwargs in spy.calls] == [5] * len(spy.calls)
    assert _words(result.text) == _words(plain_result.text)  # both right on clean speech


def test_patience_reaches_the_beam_search(engine, plain, agent, monkeypatch):
    assert plain[1][0][1]["patience"] == 1.0
    spy = _spy_generate(engine, monkeypatch)
    result = _decode(engine, agent, beam_size=2, patience=2.5)
    assert spy.calls and all(k["patience"] == 2.5 and k["beam_size"] == 2 for _, k in spy.calls)
    assert "agent" in _words(result.text)


def test_length_penalty_reaches_the_decoder(engine, plain, agent, monkeypatch):
    assert plain[1][0][1]["length_penalty"] == 1.0
    spy = _spy_generate(engine, monkeypatch)
    result = _decode(engine, agent, beam_size=2, length_penalty=0.3)
    assert spy.calls and all(k["length_penalty"] == 0.3 for _, k in spy.calls)
    assert "agent" in _words(result.text)
    # faster-whisper undoes the penalty when it reports the mean log-probability
    assert all(-2.0 < s.avg_logprob < 0 for s in result.segments)


def test_temperature_and_best_of_sample_candidates(engine, plain, agent, monkeypatch):
    assert all(s.temperature == 0.0 for s in plain[0].segments)
    assert "sampling_temperature" not in plain[1][0][1]  # greedy at temperature 0
    spy = _spy_generate(engine, monkeypatch)
    result = _decode(engine, agent, temperature=(1.0,), best_of=3)
    assert result.segments and all(s.temperature == 1.0 for s in result.segments)
    for _, kwargs in spy.calls:
        assert kwargs["sampling_temperature"] == 1.0
        assert kwargs["num_hypotheses"] == 3 and kwargs["beam_size"] == 1


LADDER = dict(temperature=(0.0, 0.5), log_prob_threshold=None, compression_ratio_threshold=None)


@pytest.fixture(scope="module")
def ladder_unchecked(engine, agent):
    """Two temperatures but neither guard on: the first (greedy) decode is always kept."""
    result = _decode(engine, agent, **LADDER)
    assert result.segments and all(s.temperature == 0.0 for s in result.segments)
    return result


def test_log_prob_threshold_makes_the_temperature_fall_back(
    engine, agent, ladder_unchecked, monkeypatch
):
    spy = _spy_generate(engine, monkeypatch)
    # No decode reaches a mean log-probability of 0: every temperature of the ladder is tried.
    result = _decode(engine, agent, **{**LADDER, "log_prob_threshold": 0.0})
    assert result.segments and all(s.temperature == 0.5 for s in result.segments)
    assert [k.get("sampling_temperature") for _, k in spy.calls][:2] == [None, 0.5]
    assert "agent" in _words(result.text)


def test_compression_ratio_threshold_makes_the_temperature_fall_back(
    engine, agent, ladder_unchecked
):
    # Short text barely compresses (ratio ~1.1): a threshold of 0.5 calls every decode a loop.
    strict = _decode(engine, agent, **{**LADDER, "compression_ratio_threshold": 0.5})
    assert strict.segments and all(s.compression_ratio > 0.5 for s in strict.segments)
    assert all(s.temperature == 0.5 for s in strict.segments)


def test_no_speech_threshold_none_keeps_what_the_guards_drop(engine, ghost, ghost_plain):
    assert ghost_plain.text  # no_speech_threshold=None: the hallucination stays
    guarded = _decode(engine, ghost, **{**GHOST_OPTIONS, "no_speech_threshold": 0.6})
    assert guarded.segments == () and guarded.text == ""


# -- repetition --------------------------------------------------------------------------------
def test_repetition_penalty_breaks_up_repeated_text(engine, looping, looping_plain):
    penalized = _decode(engine, looping, vad_filter=False, repetition_penalty=1.5)
    before = _repeated_ngrams(_text_tokens(engine, looping_plain))
    after = _repeated_ngrams(_text_tokens(engine, penalized))
    assert after < before / 3, (before, after, penalized.text)
    assert _words(penalized.text)[:6] == _words(looping_plain.text)[:6]


def test_no_repeat_ngram_size_forbids_repeated_ngrams(engine, looping, looping_plain):
    result = _decode(engine, looping, vad_filter=False, no_repeat_ngram_size=3)
    windows = _window_tokens(result)
    assert windows and all(_repeated_ngrams(tokens) == 0 for tokens in windows.values())
    assert "agent" in _words(result.text)


# -- prompts, hotwords, vocabulary, suppressed tokens ------------------------------------------
def test_initial_prompt_sets_the_style(engine, plain, agent, monkeypatch):
    prompt = "hello and welcome to the phone system please listen carefully"
    spy = _spy_generate(engine, monkeypatch)
    result = _decode(engine, agent, initial_prompt=prompt)
    prompt_ids = engine.model.hf_tokenizer.encode(" " + prompt, add_special_tokens=False).ids
    first = spy.calls[0][0]
    assert first[0] == _token(engine, "<|startofprev|>") and first[1 : 1 + len(prompt_ids)] == (
        prompt_ids
    )
    # The prompt's style (lower case, no punctuation) is copied; the words stay right.
    assert plain[0].text[0].isupper() and "." in plain[0].text
    assert result.text == result.text.lower() and not re.search(r"[.,!?]", result.text)
    assert _words(result.text) == _words(plain[0].text)


def test_hotwords_correct_a_misheard_word(engine, conference_plain, monkeypatch):
    spy = _spy_generate(engine, monkeypatch)
    result = _decode(engine, prompt_path(CONFERENCE), hotwords="conference")
    hot = engine.model.hf_tokenizer.encode(" conference", add_special_tokens=False).ids
    assert spy.calls[0][0][1 : 1 + len(hot)] == hot  # after <|startofprev|>
    assert "conference" in _words(result.text) and "comfriends" not in _words(result.text)


def test_vocabulary_bias_corrects_a_misheard_word(engine, conference_plain):
    options = DecodeOptions(vocabulary=("conference",), hotwords="participant")
    assert engine.transcribe_kwargs(options)["hotwords"] == "participant conference"
    result = _decode(engine, prompt_path(CONFERENCE), vocabulary=("conference",))
    assert "conference" in _words(result.text) and "comfriends" not in _words(result.text)


def test_vocabulary_restrict_allows_only_the_listed_words(engine, conference_plain):
    vocabulary = ("you", "are", "currently", "the", "only", "participant", "in", "conference")
    result = _decode(
        engine, prompt_path(CONFERENCE), vocabulary=vocabulary, vocabulary_mode="restrict"
    )
    end_of_text = _token(engine, "<|endoftext|>")
    allowed = allowed_token_ids(engine.model.hf_tokenizer, vocabulary)
    text_tokens = [t for s in result.segments for t in s.tokens if t < end_of_text]
    assert text_tokens and set(text_tokens) <= allowed
    assert set(_words(result.text)) <= set(vocabulary)
    assert "conference" in _words(result.text)  # "ComFriends" cannot be spelled
    # restrict mode does not also bias: the words are not added to the prompt
    restrict = DecodeOptions(vocabulary=vocabulary, vocabulary_mode="restrict")
    assert engine.transcribe_kwargs(restrict)["hotwords"] is None


def test_suppress_tokens_keep_a_word_out(engine, plain, agent):
    tokenizer = engine.model.hf_tokenizer
    spellings = ["agent", " agent", "Agent", " Agent", "AGENT", " AGENT"]
    ids = sorted({i for s in spellings for i in tokenizer.encode(s, add_special_tokens=False).ids})
    assert "agent" in _words(plain[0].text)
    result = _decode(engine, agent, suppress_tokens=(-1, *ids))
    assert not {t for s in result.segments for t in s.tokens} & set(ids)
    assert "agent" not in result.text.lower()
    assert {"already", "logged", "number", "pound"} <= set(_words(result.text))


# -- voice activity detection ------------------------------------------------------------------
@pytest.fixture(scope="module")
def vad_decodes(engine, padded_noisy):
    """Seconds of audio the decoder saw, and the result, per VAD setting."""
    out = {}
    mp = pytest.MonkeyPatch()
    try:
        for name, changes in {
            "on": {},
            "off": {"vad_filter": False},
            "low threshold": {"vad": VadOptions(threshold=0.05)},
            "high threshold": {"vad": VadOptions(threshold=1.0)},
        }.items():
            seen = _spy_decoded_seconds(engine, mp)
            result = _decode(engine, padded_noisy, **changes)
            out[name] = (sum(seen), result)
            mp.undo()
    finally:
        mp.undo()
    return out


def test_vad_filter_removes_the_padding_before_decoding(vad_decodes, padded_noisy):
    duration = padded_noisy.size / SAMPLE_RATE  # 21.5 s, of which 5.5 s speech
    seconds_on, on = vad_decodes["on"]
    seconds_off, off = vad_decodes["off"]
    assert seconds_off == pytest.approx(duration, abs=0.01)
    assert 5.0 < seconds_on < 8.0  # the speech and its 0.4 s pads
    # Times stay those of the original audio: speech starts after the 8 s of noise.
    assert 7.0 < on.segments[0].start < 9.0 and on.segments[-1].end < duration
    assert "agent" in _words(on.text) and "agent" in _words(off.text)


def test_vad_threshold_decides_what_counts_as_speech(vad_decodes):
    default, _ = vad_decodes["on"]
    low, low_result = vad_decodes["low threshold"]
    high, high_result = vad_decodes["high threshold"]
    assert low > default + 4.0  # faint noise (speech probability ~0.01) now passes
    assert high == 0.0 and high_result.segments == ()  # nothing reaches a probability of 1
    assert "agent" in _words(low_result.text)


# -- context -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_windows(agent):
    """The agent prompt, 25 s of silence, then another prompt: two 30 s decoder windows."""
    return np.concatenate([agent, silence(25), load_audio(prompt_path("conf-placeintoconf"))])


@pytest.mark.parametrize("condition", [False, True])
def test_condition_on_previous_text_prompts_the_next_window(
    engine, two_windows, monkeypatch, condition
):
    spy = _spy_generate(engine, monkeypatch)
    result = _decode(engine, two_windows, vad_filter=False, condition_on_previous_text=condition)
    assert len(spy.calls) >= 2 and "conference" in _words(result.text)
    previous = _token(engine, "<|startofprev|>")
    first_text = [t for t in result.segments[0].tokens if t < _token(engine, "<|endoftext|>")]
    second = spy.calls[1][0]
    if condition:
        assert second[0] == previous and _contains(second, first_text)  # the first window's words
    else:
        assert all(previous not in prompt for prompt, _ in spy.calls)


def test_hallucination_silence_threshold_skips_silence_before_a_hallucination(
    engine, ghost, ghost_plain
):
    first = ghost_plain.segments[0]
    assert all(s.window_start == 0.0 for s in ghost_plain.segments)
    skipped = _decode(engine, ghost, **GHOST_OPTIONS, hallucination_silence_threshold=2.0)
    # The anomalous segment (improbable words between silences) is thrown away and decoding
    # resumes from where it started, so what is left comes from a later window.
    assert (first.start, first.text) not in [(s.start, s.text) for s in skipped.segments]
    assert all(s.window_start >= first.start - 0.02 for s in skipped.segments)


# -- output shape ------------------------------------------------------------------------------
def test_word_timestamps(engine, plain, agent):
    assert plain[0].segments and all(s.words == () for s in plain[0].segments)
    result = _decode(engine, agent, word_timestamps=True)
    words = result.words
    assert [w.word.strip(" .,").lower() for w in words][:3] == ["that", "agent", "is"]
    assert len(words) == len(_words(result.text))
    for segment in result.segments:
        assert all(
            segment.start - 0.5 <= w.start <= w.end <= segment.end + 0.5 for w in segment.words
        )


def test_max_new_tokens_truncates_each_window(engine, plain, agent, monkeypatch):
    spy = _spy_generate(engine, monkeypatch)
    clips = _spy_decode_clips(engine, monkeypatch)
    result = _decode(engine, agent, max_new_tokens=5)
    assert all(k["max_length"] == len(prompt) + 5 for prompt, k in spy.calls)
    assert all(len(tokens) <= 5 for tokens in _window_tokens(result).values())
    words, full = _words(result.text), _words(plain[0].text)
    assert 0 < len(words) < len(full) and words == full[: len(words)]
    assert clips == [None]  # the user's own cap is not mistaken for an overflowing window


# -- windows -----------------------------------------------------------------------------------
def test_amharic_windows_are_capped_at_ten_seconds(engine, agent, monkeypatch):
    cap = max_window_seconds("am")
    assert cap == pytest.approx(10.08) and max_window_seconds("en") == 30.0
    gap = silence(6)
    audio = np.concatenate([agent, gap, agent, gap, agent, gap, agent])  # 40 s
    clips = _spy_decode_clips(engine, monkeypatch)
    # A few tokens per window suffice to see the windows (English speech decoded as Amharic).
    result = _decode(engine, audio, language="am", vad_filter=False, max_new_tokens=8)
    assert result.language == "am"
    assert clips[0] == fixed_windows(audio.size / SAMPLE_RATE, cap) and len(clips[0]) == 4
    assert all(end - start <= cap + 1e-6 for call in clips for start, end in call)
    starts = [start for start, _ in clips[0]]
    assert all(any(a - 0.02 <= s.window_start < a + cap for a in starts) for s in result.segments)


@pytest.fixture(scope="module")
def resplit_audio():
    """Eight prompts with 0.4 s gaps: 23 s of dense speech."""
    pieces = [x for name in RESPLIT_PROMPTS for x in (load_audio(prompt_path(name)), silence(0.4))]
    return np.concatenate(pieces)


def test_windows_that_hit_the_token_limit_are_split_again(engine, resplit_audio, monkeypatch):
    limit = 30  # a decoder that holds 30 tokens per window: 5.4 s windows for English
    monkeypatch.setattr(engine, "window_token_limit", limit)  # restored after the test
    window = max_window_seconds("en", limit)
    assert window == pytest.approx(5.4) and WINDOW_TOKEN_LIMIT == 224
    clips = _spy_decode_clips(engine, monkeypatch)
    result = _decode(engine, resplit_audio, vad_filter=False)
    first = clips[0]
    assert first == fixed_windows(resplit_audio.size / SAMPLE_RATE, window)
    # At least one full window overflowed and was decoded again as two halves.
    halves = [pair for call in clips[1:] for pair in zip(call[::2], call[1::2], strict=True)]
    assert any((left[0], right[1]) in first and left[1] == right[0] for left, right in halves), (
        clips
    )
    # ... and no text was lost doing so.
    missing = _in_order(list(RESPLIT_PROMPTS.values()), result.text)
    assert not missing, (missing, result.text)
