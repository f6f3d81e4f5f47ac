"""Train / validation / test splits of a dataset, written as a new manifest version
(`utils.dataset.versions`).

Choices:

- Speaker-disjoint: every speaker's utterances go to one split. Utterances without a speaker are
  each their own group (keyed by id): prefixes of ids are not reliable speaker names (LJSpeech's
  `LJ001-` is a chapter of its one speaker), so none is guessed; a warning counts them.
- Deterministic from the seed: groups are ordered by a 64-bit blake2b hash of (seed, speaker)
  (stable across runs, machines and Python versions, unlike `hash()`).
- Shares are of total duration. Going through the groups in order, a group goes to validation
  if at least half of it fits in validation's remaining room (share x total), else likewise to
  test, else to train; so each evaluation split ends within half a group of its target.
- Text length: `CANDIDATES` orders are tried (the hash order, then re-mixes of it); among those
  whose total share error is within `SHARE_SLACK` of the best, the one whose splits' mean text
  length (characters per utterance) is closest to the overall mean wins. With more than
  `MANY_GROUPS` groups only the hash order is used: random halves that large are balanced anyway.
- Few speakers: when no speaker-disjoint split gives every requested split (share > 0) and train
  at least one group (e.g. 1 or 2 speakers, or a few speakers each far above a share), the split
  is made by utterance (each utterance its own group) with a warning that the same voices are in
  several splits. A split whose duration share is far off the requested one is warned about.
- Existing splits (Common Voice, FLEURS...) are kept as they are, and no version is written,
  when `keep_existing` and every utterance has one; when only some have one, all are reassigned
  (with a warning). Speakers shared by kept splits are warned about.
- Memory: the manifest is streamed twice; in between, 4 numbers per utterance (two hashes,
  duration, text length) and the per-group totals are held.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from utils.dataset.manifest import MANIFEST_NAME, SPLITS, Utterance, iter_manifest
from utils.dataset.versions import VersionInfo, list_versions, new_version

CANDIDATES = 8  # group orders tried for text-length balance
MANY_GROUPS = 200_000  # above this, only the hash order is tried
SHARE_SLACK = 0.01  # share error (sum over evaluation splits) traded for text-length balance


@dataclass(frozen=True)
class SplitOptions:
    """Shares of the total duration for validation and test (train gets the rest)."""

    validation: float = 0.1
    test: float = 0.1
    seed: int = 0
    keep_existing: bool = True

    def check(self) -> None:
        """ValueError unless both shares are in [0, 1) and leave train a positive share."""
        if not (0 <= self.validation < 1 and 0 <= self.test < 1):
            raise ValueError(f"shares must be in [0, 1): {self.validation}, {self.test}")
        if self.validation + self.test >= 1:
            raise ValueError("validation + test must be below 1, leaving train a share")


@dataclass(frozen=True)
class SplitCounts:
    """One split: utterances, hours, distinct named speakers, mean characters per utterance."""

    utterances: int
    hours: float
    speakers: int
    mean_chars: float


@dataclass(frozen=True)
class SplitResult:
    """`splits` by name (all of SPLITS); `by_speaker`: no named speaker is in two splits;
    `version`: the version written (the current one when existing splits were kept)."""

    splits: dict[str, SplitCounts]
    by_speaker: bool
    kept_existing: bool
    version: VersionInfo
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _Survey:
    """The first pass: per utterance, its speaker group's and its own key, seconds, chars."""

    speaker_keys: np.ndarray
    utterance_keys: np.ndarray
    seconds: np.ndarray
    chars: np.ndarray
    with_split: int
    unnamed: int

    @property
    def n(self) -> int:
        return len(self.seconds)


def _key(seed: int, kind: str, value: str) -> int:
    digest = hashlib.blake2b(f"{seed}\0{kind}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _survey(root: Path, seed: int) -> _Survey:
    speaker_keys, utterance_keys = array("Q"), array("Q")
    seconds, chars = array("d"), array("d")
    with_split = unnamed = 0
    for utterance in iter_manifest(root / MANIFEST_NAME):
        own = _key(seed, "id", utterance.id)
        utterance_keys.append(own)
        speaker_keys.append(_key(seed, "speaker", utterance.speaker) if utterance.speaker else own)
        seconds.append(utterance.duration)
        chars.append(len(utterance.text))
        with_split += bool(utterance.split)
        unnamed += not utterance.speaker
    return _Survey(
        np.frombuffer(speaker_keys, np.uint64), np.frombuffer(utterance_keys, np.uint64),
        np.frombuffer(seconds, np.float64), np.frombuffer(chars, np.float64), with_split, unnamed,
    )  # fmt: skip


def _mix(keys: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of keys + salt: a re-shuffled, still deterministic order key."""
    z = keys + np.uint64((salt * 0x9E3779B97F4A7C15) % (1 << 64))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _greedy(seconds: np.ndarray, targets: tuple[float, float]) -> np.ndarray:
    """Codes (0 train, 1 validation, 2 test) of groups taken in the given order."""
    filled = [0.0, 0.0]
    codes = np.zeros(len(seconds), np.int8)
    for i, duration in enumerate(seconds.tolist()):
        for split in (0, 1):
            if targets[split] > 0 and filled[split] + duration / 2 <= targets[split]:
                filled[split] += duration
                codes[i] = split + 1
                break
    return codes


def _score(
    codes: np.ndarray, groups: dict[str, np.ndarray], shares: tuple[float, float]
) -> tuple[float, float]:
    """(share error summed over validation and test, largest relative mean-text-length gap)."""
    total = max(float(groups["seconds"].sum()), 1e-9)
    mean_all = groups["chars"].sum() / max(groups["count"].sum(), 1)
    share_error, text_gap = 0.0, 0.0
    for code in range(3):
        chosen = codes == code
        if code:
            share_error += abs(groups["seconds"][chosen].sum() / total - shares[code - 1])
        count = groups["count"][chosen].sum()
        if count and mean_all:
            text_gap = max(text_gap, abs(groups["chars"][chosen].sum() / count / mean_all - 1))
    return share_error, text_gap


def _plan(keys: np.ndarray, survey: _Survey, shares: tuple[float, float]) -> np.ndarray:
    """Split codes per utterance for groups given by `keys` (one key per utterance)."""
    unique, inverse = np.unique(keys, return_inverse=True)
    groups = {
        "seconds": np.bincount(inverse, survey.seconds, len(unique)),
        "chars": np.bincount(inverse, survey.chars, len(unique)),
        "count": np.bincount(inverse, minlength=len(unique)).astype(np.float64),
    }
    total = float(groups["seconds"].sum())
    targets = (shares[0] * total, shares[1] * total)
    tries = 1 if len(unique) > MANY_GROUPS else CANDIDATES
    candidates = []
    for salt in range(tries):
        order = np.arange(len(unique)) if salt == 0 else np.argsort(_mix(unique, salt))
        codes = np.empty(len(unique), np.int8)
        codes[order] = _greedy(groups["seconds"][order], targets)
        candidates.append((_score(codes, groups, shares), codes))
    best_share = min(score[0] for score, _ in candidates)
    eligible = [
        (gap, i)
        for i, ((error, gap), _) in enumerate(candidates)
        if error <= best_share + SHARE_SLACK
    ]
    return candidates[min(eligible)[1]][1][inverse]


def _complete(codes: np.ndarray, shares: tuple[float, float]) -> bool:
    """Whether train and every split with a share > 0 got at least one utterance."""
    present = set(np.unique(codes).tolist())
    return 0 in present and all(code in present for code in (1, 2) if shares[code - 1] > 0)


class _Tally:
    """Per-split counts of one pass (local to that pass)."""

    def __init__(self) -> None:
        self.count = dict.fromkeys(SPLITS, 0)
        self.seconds = dict.fromkeys(SPLITS, 0.0)
        self.chars = dict.fromkeys(SPLITS, 0)
        self.speakers: dict[str, set[str]] = {name: set() for name in SPLITS}

    def add(self, utterance: Utterance) -> None:
        name = utterance.split or "train"
        self.count[name] += 1
        self.seconds[name] += utterance.duration
        self.chars[name] += len(utterance.text)
        if utterance.speaker:
            self.speakers[name].add(utterance.speaker)

    def counts(self) -> dict[str, SplitCounts]:
        return {
            name: SplitCounts(
                utterances=self.count[name],
                hours=round(self.seconds[name] / 3600, 4),
                speakers=len(self.speakers[name]),
                mean_chars=round(self.chars[name] / max(self.count[name], 1), 2),
            )
            for name in SPLITS
        }

    def shared_speakers(self) -> set[str]:
        a, b, c = (self.speakers[name] for name in SPLITS)
        return (a & b) | (a & c) | (b & c)


def assign_splits(root: str | os.PathLike, options: SplitOptions | None = None) -> SplitResult:
    """Assign train/validation/test (see the module notes) and write them as a new manifest
    version with a lineage step "split"; keeps complete existing splits when asked."""
    options = options or SplitOptions()
    options.check()
    root = Path(root)
    survey = _survey(root, options.seed)
    if survey.n == 0:
        raise ValueError(f"{root}: the manifest has no utterances to split")
    if options.keep_existing and survey.with_split == survey.n:
        return _keep_existing(root)
    shares = (options.validation, options.test)
    warnings = _survey_warnings(survey, options)
    codes, by_speaker = _plan(survey.speaker_keys, survey, shares), True
    if not _complete(codes, shares):
        by_speaker = False
        codes = _plan(survey.utterance_keys, survey, shares)
        warnings.append(_fallback_warning(survey))
        if not _complete(codes, shares):
            warnings.append(f"only {survey.n} utterance(s): some requested split is empty")
    warnings += _share_warnings(codes, survey.seconds, shares)
    return _write(root, codes, options, by_speaker, tuple(warnings))


def _survey_warnings(survey: _Survey, options: SplitOptions) -> list[str]:
    found = []
    if options.keep_existing and survey.with_split:
        found.append(
            f"only {survey.with_split} of {survey.n} utterances had a split: all were reassigned"
        )
    if survey.unnamed:
        found.append(
            f"{survey.unnamed} utterance(s) have no speaker: each is its own group, so an "
            "unnamed speaker may be in several splits"
        )
    return found


def _fallback_warning(survey: _Survey) -> str:
    speakers = len(np.unique(survey.speaker_keys))
    return (
        f"a speaker-disjoint split is impossible with {speakers} speaker group(s) for the "
        "requested shares: split by utterance instead, so the same voices are in train and the "
        "evaluation splits and their scores will be optimistic"
    )


def _share_warnings(
    codes: np.ndarray, seconds: np.ndarray, shares: tuple[float, float]
) -> list[str]:
    total = max(float(seconds.sum()), 1e-9)
    found = []
    for code, name in ((1, "validation"), (2, "test")):
        share = float(seconds[codes == code].sum()) / total
        wanted = shares[code - 1]
        if abs(share - wanted) > max(0.02, 0.25 * wanted):
            found.append(
                f"{name} holds {share:.1%} of the audio ({wanted:.1%} requested): the speakers "
                "are too few or too unequal for a closer split"
            )
    return found


def _write(
    root: Path,
    codes: np.ndarray,
    options: SplitOptions,
    by_speaker: bool,
    warnings: tuple[str, ...],
) -> SplitResult:
    tally = _Tally()
    with new_version(root, "split") as draft:
        for i, utterance in enumerate(iter_manifest(root / MANIFEST_NAME)):
            if i >= len(codes):
                raise ValueError(f"{root}: the manifest changed while splitting")
            assigned = replace(utterance, split=SPLITS[codes[i]])
            draft.write(assigned)
            tally.add(assigned)
        if draft.count != len(codes):
            raise ValueError(f"{root}: the manifest changed while splitting")
        counts = tally.counts()
        draft.step.update(_step(options, counts, by_speaker, warnings))
    assert draft.info is not None
    return SplitResult(
        counts, by_speaker, kept_existing=False, version=draft.info, warnings=warnings
    )


def _step(
    options: SplitOptions,
    counts: dict[str, SplitCounts],
    by_speaker: bool,
    warnings: tuple[str, ...],
) -> dict[str, Any]:
    return {
        "options": asdict(options),
        "by_speaker": by_speaker,
        "splits": {name: asdict(c) for name, c in counts.items()},
        "warnings": list(warnings),
    }


def _keep_existing(root: Path) -> SplitResult:
    tally = _Tally()
    for utterance in iter_manifest(root / MANIFEST_NAME):
        tally.add(utterance)
    shared = sorted(tally.shared_speakers())
    warnings = ()
    if shared:
        warnings = (
            f"the existing splits share {len(shared)} speaker(s) (e.g. {shared[0]!r}): their "
            "evaluation is not speaker-independent",
        )
    return SplitResult(tally.counts(), not shared, True, list_versions(root)[-1], warnings)
