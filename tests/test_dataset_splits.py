"""Dataset versions, quality filters and speaker-disjoint splits, on small manifests written
directly (tiny WAV files: the fingerprint reads audio bytes)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from utils.dataset.filtering import FilterOptions, apply_filter, judge, preview_filter
from utils.dataset.manifest import MANIFEST_NAME, ManifestWriter, Utterance, iter_manifest
from utils.dataset.splits import SplitOptions, assign_splits
from utils.dataset.store import fingerprint, read_info, record_step
from utils.dataset.versions import archived_path, list_versions, restore_version

WAVS = 4


def _make(root: Path, utterances: list[Utterance]) -> Path:
    """A dataset directory with `utterances` (audio: WAVS tiny noise files, shared)."""
    (root / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(WAVS):
        sf.write(root / "audio" / f"a{i}.wav", rng.normal(0, 0.1, 160).astype(np.float32), 16000)
    with ManifestWriter(root / MANIFEST_NAME) as writer:
        for utterance in utterances:
            writer.write(utterance)
    record_step(root, {"step": "import", "format": "test"})
    return root


def _utt(i: int, speaker: str = "", seconds: float = 2.0, **fields) -> Utterance:
    text = fields.pop("text", "ሰላም " * (1 + i % 7))
    return Utterance(
        id=f"u{i:05d}", audio=f"audio/a{i % WAVS}.wav", duration=seconds, sample_rate=16000,
        text=text, speaker=speaker, **fields,
    )  # fmt: skip


def _speakers(seed: int, speakers: int, unnamed: int = 0) -> list[Utterance]:
    """`speakers` speakers with 1-15 utterances of 1-15 s each, then `unnamed` utterances."""
    rng = np.random.default_rng(seed)
    rows: list[Utterance] = []
    for s in range(speakers):
        for _ in range(int(rng.integers(1, 16))):
            rows.append(_utt(len(rows), f"spk{s}", float(rng.uniform(1, 15))))
    return rows + [_utt(len(rows) + k, "", float(rng.uniform(1, 15))) for k in range(unnamed)]


def _manifest(root: Path) -> list[Utterance]:
    return list(iter_manifest(root / MANIFEST_NAME))


def _shares(root: Path) -> dict[str, float]:
    seconds: dict[str, float] = defaultdict(float)
    for u in _manifest(root):
        seconds[u.split] += u.duration
    total = sum(seconds.values())
    return {name: value / total for name, value in seconds.items()}


# splits


def test_no_named_speaker_in_two_splits_over_seeds(tmp_path):
    for seed in range(15):
        rng = np.random.default_rng(100 + seed)
        rows = _speakers(seed, int(rng.integers(4, 40)), unnamed=int(rng.integers(0, 20)))
        root = _make(tmp_path / f"d{seed}", rows)
        result = assign_splits(root, SplitOptions(seed=seed))
        splits_of = defaultdict(set)
        for u in _manifest(root):
            assert u.split in ("train", "validation", "test")
            if u.speaker:
                splits_of[u.speaker].add(u.split)
        assert result.by_speaker, result.warnings
        assert all(len(s) == 1 for s in splits_of.values()), seed
        assert sum(c.utterances for c in result.splits.values()) == len(rows)
        assert all(c.utterances > 0 for c in result.splits.values()), seed


def test_shares_close_to_requested_and_counts_reported(tmp_path):
    root = _make(tmp_path / "d", _speakers(1, 80))
    result = assign_splits(root, SplitOptions(validation=0.15, test=0.1, seed=3))
    shares = _shares(root)
    assert shares["validation"] == pytest.approx(0.15, abs=0.02)
    assert shares["test"] == pytest.approx(0.10, abs=0.02)
    assert result.warnings == ()
    rows = _manifest(root)
    for name, counts in result.splits.items():
        mine = [u for u in rows if u.split == name]
        assert counts.utterances == len(mine)
        assert counts.speakers == len({u.speaker for u in mine})
        assert counts.hours == pytest.approx(sum(u.duration for u in mine) / 3600, abs=1e-4)
        assert counts.mean_chars == pytest.approx(np.mean([len(u.text) for u in mine]), abs=0.01)


def test_deterministic_for_a_seed_and_changes_with_another(tmp_path):
    rows = _speakers(2, 30)

    def split_with(name: str, seed: int) -> dict[str, str]:
        root = _make(tmp_path / name, rows)
        assign_splits(root, SplitOptions(seed=seed))
        return {u.id: u.split for u in _manifest(root)}

    assert split_with("a", 7) == split_with("b", 7)
    assert split_with("c", 7) != split_with("d", 8)


@pytest.mark.parametrize("speakers", [1, 2])
def test_few_speakers_split_by_utterance_with_a_warning(tmp_path, speakers):
    rows = [_utt(i, f"spk{i % speakers}", 1.0 + i % 5) for i in range(60)]
    root = _make(tmp_path / "d", rows)
    result = assign_splits(root)
    assert not result.by_speaker
    assert any("speaker-disjoint split is impossible" in w for w in result.warnings)
    assert all(c.utterances > 0 for c in result.splits.values())
    assert _shares(root)["validation"] == pytest.approx(0.1, abs=0.03)
    step = read_info(root)["lineage"][-1]
    assert step["by_speaker"] is False and step["warnings"] == list(result.warnings)


def test_unnamed_utterances_are_their_own_groups(tmp_path):
    root = _make(tmp_path / "d", [_utt(i, "", 1.0 + i % 3) for i in range(50)])
    result = assign_splits(root)
    assert result.by_speaker
    assert any("50 utterance(s) have no speaker" in w for w in result.warnings)
    assert {u.split for u in _manifest(root)} == {"train", "validation", "test"}


def test_existing_splits_respected(tmp_path):
    names = ("train", "validation", "test")
    rows = [_utt(i, f"spk{i % 9}", split=names[i % 9 // 3]) for i in range(45)]
    root = _make(tmp_path / "kept", rows)
    before = (root / MANIFEST_NAME).read_bytes()
    result = assign_splits(root)
    assert result.kept_existing and result.by_speaker and result.warnings == ()
    assert (root / MANIFEST_NAME).read_bytes() == before
    assert [v.number for v in list_versions(root)] == [1] and result.version.number == 1
    assert result.splits["validation"].utterances == 15

    redone = assign_splits(root, SplitOptions(keep_existing=False))
    assert not redone.kept_existing and redone.version.number == 2

    partial = _make(tmp_path / "partial", [*rows[:10], *(replace(u, split="") for u in rows[10:])])
    result = assign_splits(partial)
    assert not result.kept_existing
    assert any("only 10 of 45 utterances had a split" in w for w in result.warnings)

    shared = _make(tmp_path / "shared", [replace(u, speaker="same") for u in rows])
    result = assign_splits(shared)
    assert result.kept_existing and not result.by_speaker
    assert "share 1 speaker(s)" in result.warnings[0]


def test_bad_split_options_refused(tmp_path):
    root = _make(tmp_path / "d", _speakers(0, 5))
    for options in (SplitOptions(validation=0.6, test=0.4), SplitOptions(test=-0.1)):
        with pytest.raises(ValueError):
            assign_splits(root, options)


# filters


def _quality(snr, clip=0.0, cps=12.0) -> dict:
    return {"snr_db": snr, "clipping_ratio": clip, "chars_per_second": cps, "duration_s": 2.0}


def _filter_rows() -> list[Utterance]:
    return [
        _utt(0, "a", 3.0, quality=_quality(30.0)),
        _utt(1, "a", 3.0, quality=_quality(5.0)),  # low snr
        _utt(2, "a", 3.0, quality=_quality(4.0, clip=0.2)),  # low snr and clipped
        _utt(3, "b", 0.3, quality=_quality(25.0)),  # too short
        _utt(4, "b", 40.0, quality=_quality(25.0)),  # too long
        _utt(5, "b", 3.0, quality=_quality(None)),  # no speech found: snr None
        _utt(6, "c", 3.0),  # never measured
        _utt(7, "c", 3.0, quality=_quality(20.0, cps=40.0)),  # too fast
        _utt(8, "c", 3.0, quality=_quality(10.0)),  # at the bound: kept
    ]


OPTIONS = FilterOptions(
    min_snr_db=10.0, max_clipping_ratio=0.01, min_seconds=0.5, max_seconds=30.0,
    max_chars_per_second=25.0,
)  # fmt: skip


def test_filter_preview_equals_applied_and_records_reasons(tmp_path):
    root = _make(tmp_path / "d", _filter_rows())
    preview = preview_filter(root, OPTIONS)
    assert not (root / "versions").exists()
    assert (preview.total, preview.kept, preview.removed) == (9, 4, 5)
    assert preview.removed_by_reason == {
        "max_chars_per_second": 1, "max_clipping_ratio": 1, "max_seconds": 1,
        "min_seconds": 1, "min_snr_db": 2,
    }  # fmt: skip
    assert preview.unmeasured == {"chars_per_second": 1, "clipping_ratio": 1, "snr_db": 2}

    result = apply_filter(root, OPTIONS)
    assert result.counts == preview
    assert [u.id for u in _manifest(root)] == ["u00000", "u00005", "u00006", "u00008"]
    removed = [json.loads(line) for line in result.removed_path.read_text().splitlines()]
    assert result.removed_path.name == "filter_removed-v2.jsonl"
    assert {r["id"]: r["reasons"] for r in removed} == {
        "u00001": ["min_snr_db"], "u00002": ["min_snr_db", "max_clipping_ratio"],
        "u00003": ["min_seconds"], "u00004": ["max_seconds"], "u00007": ["max_chars_per_second"],
    }  # fmt: skip
    assert removed[0]["figures"]["snr_db"] == 5.0
    step = read_info(root)["lineage"][-1]
    assert step["step"] == "filter" and step["version"] == 2
    assert step["options"] == {**OPTIONS.active(), "remove_unmeasured": False}
    assert step["kept"] == 4 and step["removed_by_reason"] == preview.removed_by_reason
    assert step["removed_record"] == "versions/filter_removed-v2.jsonl"


def test_unmeasured_figures_kept_unless_asked(tmp_path):
    strict = replace(OPTIONS, remove_unmeasured=True)
    root = _make(tmp_path / "d", _filter_rows())
    assert judge(_filter_rows()[6], OPTIONS).reasons == ()
    assert judge(_filter_rows()[6], strict).reasons == (
        "no snr_db", "no clipping_ratio", "no chars_per_second",
    )  # fmt: skip
    preview = preview_filter(root, strict)
    result = apply_filter(root, strict)
    assert result.counts == preview
    assert (preview.kept, preview.removed) == (2, 7)
    assert preview.unmeasured == {"chars_per_second": 1, "clipping_ratio": 1, "snr_db": 2}
    assert preview.removed_by_reason["no snr_db"] == 2
    assert preview.removed_by_reason["no clipping_ratio"] == 1
    assert [u.id for u in _manifest(root)] == ["u00000", "u00008"]


def test_filter_refusals_leave_the_dataset_alone(tmp_path):
    root = _make(tmp_path / "d", _filter_rows())
    before = (root / MANIFEST_NAME).read_bytes()
    with pytest.raises(ValueError, match="no filter criterion"):
        apply_filter(root, FilterOptions())
    with pytest.raises(ValueError, match="remove all 9"):
        apply_filter(root, FilterOptions(min_seconds=100.0))
    with pytest.raises(ValueError, match="above max_seconds"):
        preview_filter(root, FilterOptions(min_seconds=5.0, max_seconds=1.0))
    assert (root / MANIFEST_NAME).read_bytes() == before
    assert [v.number for v in list_versions(root)] == [1]
    assert not any(p.name.startswith("filter_removed") for p in (root / "versions").iterdir())


# versions


def test_versions_kept_recorded_and_restorable(tmp_path):
    root = _make(tmp_path / "d", _filter_rows() + [_utt(20 + i, f"s{i % 6}") for i in range(30)])
    original = (root / MANIFEST_NAME).read_text()
    imported = fingerprint(root)
    apply_filter(root, OPTIONS)
    filtered = fingerprint(root)
    split = assign_splits(root)
    versions = list_versions(root)
    assert [(v.number, v.step, v.current) for v in versions] == [
        (1, "import", False), (2, "filter", False), (3, "split", True),
    ]  # fmt: skip
    assert [v.fingerprint for v in versions] == [imported, filtered, fingerprint(root)]
    assert [v.utterances for v in versions] == [39, 34, 34]
    assert archived_path(root, 1).read_text() == original
    assert split.version == versions[-1]
    lineage = read_info(root)["lineage"]
    assert lineage[-1]["options"] == {"validation": 0.1, "test": 0.1, "seed": 0,
                                      "keep_existing": True}  # fmt: skip
    assert lineage[-1]["replaced_fingerprint"] == filtered == lineage[-2]["fingerprint"]

    restored = restore_version(root, 1)
    assert restored.number == 4 and (root / MANIFEST_NAME).read_text() == original
    assert fingerprint(root) == imported == read_info(root)["fingerprint"]
    assert read_info(root)["lineage"][-1]["restored_from"] == 1
    assert [v.number for v in list_versions(root)] == [1, 2, 3, 4]
    assert {u.split for u in iter_manifest(archived_path(root, 3))} == {
        "train", "validation", "test",
    }  # fmt: skip
    for missing in (4, 9):
        with pytest.raises(ValueError, match=f"no archived version {missing}"):
            restore_version(root, missing)
