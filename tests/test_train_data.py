"""The training data pipeline: label layout, the resumable length-grouped sampler, the Dataset,
the collator and the LightningDataModule (splits, notes, workers, resume through Lightning)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from utils.dataset.manifest import MANIFEST_NAME, TimedText, Translation, Utterance, iter_manifest
from utils.training.config import TrainConfig
from utils.training.labels import (
    IGNORE_INDEX,
    LabelTooLongError,
    SpecialTokens,
    encode_example,
    encode_packed,
    label_length,
    plan_packs,
    text_tokens,
)
from utils.training.sampler import LengthGroupedBatchSampler, SampleKey

CONFIG = TrainConfig(batch_size=3, num_workers=0, seed=5)


@pytest.fixture(scope="module")
def processor(tiny_whisper_dir):
    from transformers import WhisperProcessor

    return WhisperProcessor.from_pretrained(tiny_whisper_dir)


@pytest.fixture(scope="module")
def tok(processor):
    return processor.tokenizer


@pytest.fixture(scope="module")
def sp(tok) -> SpecialTokens:
    return SpecialTokens.from_tokenizer(tok)


def copy_dataset(src: Path, dst: Path, change: Callable[[list[Utterance]], list[Utterance]]):
    """A dataset at `dst` sharing `src`'s audio, with the manifest passed through `change`."""
    dst.mkdir(parents=True)
    (dst / "audio").symlink_to(src / "audio", target_is_directory=True)
    utterances = change(list(iter_manifest(src / MANIFEST_NAME)))
    (dst / MANIFEST_NAME).write_text("".join(u.to_json() + "\n" for u in utterances), "utf-8")
    return dst


class Echo(torch.utils.data.Dataset):
    def __getitem__(self, key):
        return key


def noise_augmenter(audio: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """Picklable test augmenter: seeded noise."""
    rng = np.random.default_rng(seed)
    return (audio + 0.01 * rng.standard_normal(len(audio))).astype(np.float32)


# ---------------------------------------------------------------- labels


def test_special_tokens(sp, tok):
    assert (sp.sot, sp.eot, sp.prev, sp.no_timestamps) == (50258, 50257, 50361, 50363)
    assert (sp.timestamp_begin, sp.transcribe, sp.translate) == (50364, 50359, 50358)
    assert sp.language("am") == 50334 == sp.language("Amharic")
    assert sp.language("en") == tok.convert_tokens_to_ids("<|en|>")
    assert sp.timestamp(1.234) == 50364 + 62 and sp.timestamp(99) == 50364 + 1500
    with pytest.raises(ValueError, match="xx"):
        sp.language("xx")


def test_plain_label_layout(tok, sp):
    ex = encode_example(tok, "  ሰላም ነህ ወይ?", language="am", task="transcribe")
    ids, labels = list(ex.decoder_input_ids), list(ex.labels)
    assert ids[:4] == [sp.sot, sp.language("am"), sp.transcribe, sp.no_timestamps]
    assert labels == [*ids[1:], sp.eot]  # shifted by one, every target counted
    assert tok.decode(ids[4:]) == " ሰላም ነህ ወይ?"
    assert len(ex) == label_length(len(text_tokens(tok, "ሰላም ነህ ወይ?")))
    ex = encode_example(tok, "ሰላም", language="am", task="translate")
    assert ex.decoder_input_ids[2] == sp.translate


def test_prompt_is_masked_and_kept_short(tok, sp):
    prompt = "ቡና እንጠጣ።"
    n = len(text_tokens(tok, prompt))
    ex = encode_example(tok, "ዛሬ ዝናብ ዘነበ።", language="am", task="transcribe", prompt=prompt)
    ids, labels = ex.decoder_input_ids, ex.labels
    assert ids[0] == sp.prev and ids[n + 1] == sp.sot
    assert tok.decode(ids[1 : n + 1]) == " " + prompt
    assert list(labels[: n + 1]) == [IGNORE_INDEX] * (n + 1)  # prompt tokens and the sot
    assert labels[n + 1] == sp.language("am") and IGNORE_INDEX not in labels[n + 1 :]
    assert labels[-1] == sp.eot and list(labels[n + 1 : -1]) == list(ids[n + 2 :])
    long_prompt = " ".join(["ሰላም"] * 400)
    ex = encode_example(tok, "ሰላም", language="am", task="transcribe", prompt=long_prompt)
    assert ex.decoder_input_ids.index(sp.sot) == 1 + 448 // 2 - 1


def test_timestamps_and_too_long(tok, sp):
    segments = [TimedText(0.0, 1.234, "ሰላም"), TimedText(1.5, 40.0, "ቡና")]
    ex = encode_example(tok, "ignored", language="am", task="transcribe", segments=segments)
    ids = list(ex.decoder_input_ids)
    assert sp.no_timestamps not in ids
    stamps = [i - sp.timestamp_begin for i in ids if i >= sp.timestamp_begin]
    assert stamps == [0, 62, 75, 1500]  # 0.00, 1.24, 1.50 and 40 s clamped to 30.00
    assert ids[3] == sp.timestamp_begin and ex.labels[-2] == sp.timestamp_begin + 1500
    text = " ".join(["ሰላም"] * 3)
    count = label_length(len(text_tokens(tok, text)))
    assert (
        len(encode_example(tok, text, language="am", task="transcribe", max_length=count)) == count
    )
    with pytest.raises(LabelTooLongError, match=f"{count} decoder tokens"):
        encode_example(tok, text, language="am", task="transcribe", max_length=count - 1)
    long_text = " ".join(["ሰላም"] * 300)
    with pytest.raises(LabelTooLongError):
        encode_example(tok, long_text, language="am", task="transcribe")


def test_packing_plan_and_label(tok, sp):
    packs = plan_packs([10, 10, 10, 5], [10, 10, 10, 10])
    assert [p.members for p in packs] == [(0, 1), (2, 3)]
    assert packs[0].offsets == (0.0, 10.2) and packs[0].duration == pytest.approx(20.2)
    assert [p.members for p in plan_packs([1, 1, 1], [300, 200, 10], [2, 1, 0])] == [(2, 1), (0,)]
    texts = ["ሰላም ነህ", "ቡና እንጠጣ።"]
    ex = encode_packed(tok, texts, packs[0].offsets, [10, 10], language="am")
    stamps = [i - sp.timestamp_begin for i in ex.decoder_input_ids if i >= sp.timestamp_begin]
    assert stamps == [0, 500, 510, 1010] and ex.labels[-1] == sp.eot
    counts = [len(text_tokens(tok, t)) for t in texts]
    assert len(ex) == plan_packs([10, 10], counts)[0].tokens


# ---------------------------------------------------------------- sampler


def epoch_batches(sampler: LengthGroupedBatchSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return [[k.index for k in batch] for batch in sampler]


LENGTHS = np.random.default_rng(0).uniform(1, 30, size=1000)


def test_sampler_covers_every_index_once_in_length_groups():
    sampler = LengthGroupedBatchSampler(LENGTHS, 8, seed=1)
    batches = epoch_batches(sampler, 0)
    assert len(batches) == len(sampler) == 125
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert max(LENGTHS[b].max() for b in batches) == LENGTHS[batches[0]].max()  # longest first
    grouped = np.mean([np.ptp(LENGTHS[b]) for b in batches])
    shuffled = np.random.default_rng(1).permutation(1000).reshape(-1, 8)
    assert grouped < 0.2 * np.mean([np.ptp(LENGTHS[b]) for b in shuffled])
    keys = next(iter(sampler))
    assert all(isinstance(k, SampleKey) and (k.epoch, k.batch) == (0, 0) for k in keys)
    dropped = LengthGroupedBatchSampler(LENGTHS[:999], 8, seed=1, drop_last=True)
    assert all(len(b) == 8 for b in epoch_batches(dropped, 0)) and len(dropped) == 124


def test_sampler_is_a_function_of_seed_and_epoch():
    a, b = (LengthGroupedBatchSampler(LENGTHS, 8, seed=1) for _ in range(2))
    assert epoch_batches(a, 3) == epoch_batches(b, 3)
    assert epoch_batches(a, 3) != epoch_batches(a, 4)
    assert epoch_batches(a, 3) != epoch_batches(LengthGroupedBatchSampler(LENGTHS, 8, seed=2), 3)


def test_sampler_splits_ranks_evenly():
    lengths = LENGTHS[:101]  # 13 batches of 8 over 3 ranks: wraps to 15
    ranks = [LengthGroupedBatchSampler(lengths, 8, seed=1, rank=r, world_size=3) for r in range(3)]
    per_rank = [epoch_batches(s, 2) for s in ranks]
    assert [len(b) for b in per_rank] == [len(s) for s in ranks] == [5, 5, 5]
    seen = [i for batches in per_rank for b in batches for i in b]
    assert set(seen) == set(range(101))
    assert len(seen) - 101 <= 2 * 8  # only the wrapped-around batches repeat
    assert [k.batch for k in next(iter(ranks[1]))] == [0] * len(next(iter(ranks[1])))
    single = epoch_batches(LengthGroupedBatchSampler(lengths, 8, seed=1), 2)
    assert per_rank[1][0] == single[1] and per_rank[2][1] == single[5]


def test_set_position_resumes_exactly():
    full = LengthGroupedBatchSampler(LENGTHS[:200], 8, seed=4, rank=1, world_size=2)
    reference = epoch_batches(full, 2)
    for next_batch in (0, 1, 5, len(reference)):
        resumed = LengthGroupedBatchSampler(LENGTHS[:200], 8, seed=4, rank=1, world_size=2)
        resumed.set_position(2, next_batch)
        rest = [[k.index for k in b] for b in resumed]
        assert reference[:next_batch] + rest == reference
        assert len(resumed) == len(reference)
        assert [b[0].batch for b in resumed] == list(range(next_batch, len(reference)))
        assert epoch_batches(resumed, 3) == epoch_batches(full, 3)  # other epochs from 0


def test_curriculum_draws_easy_samples_first():
    lengths = LENGTHS[:400]
    difficulty = lengths  # by duration
    sampler = LengthGroupedBatchSampler(
        lengths, 8, seed=0, difficulty=difficulty, curriculum_batches=100
    )
    rank_of = np.empty(400, dtype=int)
    rank_of[np.argsort(difficulty)] = np.arange(400)
    first = epoch_batches(sampler, 0)
    assert len(first) == len(sampler) == 50
    assert all(rank_of[i] < 0.3 * 400 + 8 for i in first[0])
    shares = [max(rank_of[b]) / 400 for b in first[:10]]
    assert max(shares) < 0.45  # batches 0..9: at most the easiest 36 %
    assert np.mean([rank_of[b].mean() for b in first[-10:]]) > np.mean(
        [rank_of[b].mean() for b in first[:10]]
    )
    assert sorted(i for b in epoch_batches(sampler, 2) for i in b) == list(range(400))  # done
    resumed = LengthGroupedBatchSampler(
        lengths, 8, seed=0, difficulty=difficulty, curriculum_batches=100
    )
    resumed.set_position(0, 7)
    assert first[:7] + [[k.index for k in b] for b in resumed] == first


def test_lightning_sets_the_epoch():
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    sampler = LengthGroupedBatchSampler(LENGTHS[:20], 4, seed=0)
    loader = DataLoader(Echo(), batch_sampler=sampler, collate_fn=list)
    _set_sampler_epoch(loader, 7)
    assert sampler.epoch == 7 and next(iter(loader))[0].epoch == 7


# ---------------------------------------------------------------- dataset and collator


def fake_utterances(n: int, speakers: int = 4) -> list[Utterance]:
    texts = ["ሰላም ነህ ወይ?", "ቡና እንጠጣ።", "ዛሬ ዝናብ ዘነበ።", "ውሃ ጠማኝ።"]
    return [
        Utterance(
            id=f"u{i:03d}", audio=f"audio/u{i}.wav", duration=1.0 + i % 5, sample_rate=16000,
            text=texts[i % 4], speaker=f"spk{i % speakers}",
            translation=Translation(f"english {i}", "en") if i % 2 else None,
        )
        for i in range(n)
    ]  # fmt: skip


def test_sample_features_and_determinism(tiny_dataset_dir, processor, sp):
    from utils.training.data import WhisperTrainingSet

    utterances = [u for u in iter_manifest(tiny_dataset_dir / MANIFEST_NAME) if u.split == "train"]
    frames_seen = []

    def spec(features, seed, frames):
        frames_seen.append(frames)
        return features + np.float32(seed % 7)

    config = dataclasses.replace(CONFIG, timestamp_share=0.5, prompt_share=0.5)
    train = WhisperTrainingSet(utterances, tiny_dataset_dir, processor, config, train=True,
                               augmenter=noise_augmenter, spec_augment=spec)  # fmt: skip
    a, b = train[SampleKey(1, 0, 3)], train[SampleKey(1, 5, 3)]
    assert a.input_features.shape == (80, 3000) and a.input_features.dtype == np.float32
    assert np.array_equal(a.input_features, b.input_features) and a.labels == b.labels
    assert (a.epoch, a.batch, b.batch) == (1, 0, 5)
    other = train[SampleKey(2, 0, 3)]
    assert not np.array_equal(a.input_features, other.input_features)
    assert frames_seen[0] == pytest.approx(utterances[3].duration * 100, abs=2)
    plain = WhisperTrainingSet(utterances, tiny_dataset_dir, processor, config)[3]
    assert plain.text == utterances[3].text and plain.decoder_input_ids[3] == sp.no_timestamps
    assert plain.speech_frames == frames_seen[0] and (plain.epoch, plain.batch) == (-1, -1)
    assert not np.array_equal(plain.input_features, a.input_features)  # no augmentation


def test_speed_change_rescales_timestamps(tiny_dataset_dir, processor, sp):
    from utils.training.data import WhisperTrainingSet

    def double_speed(audio: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        return audio[::2]

    utterances = [u for u in iter_manifest(tiny_dataset_dir / MANIFEST_NAME) if u.split == "train"]
    config = dataclasses.replace(CONFIG, timestamp_share=1.0)
    train = WhisperTrainingSet(utterances, tiny_dataset_dir, processor, config, train=True,
                               augmenter=double_speed)  # fmt: skip
    sample = train[SampleKey(0, 0, 1)]
    end = sample.decoder_input_ids[-1] - sp.timestamp_begin
    assert end == round(utterances[1].duration / 2 / 0.02)


def test_shares_are_honoured(processor, sp):
    from utils.training.data import WhisperTrainingSet

    config = dataclasses.replace(CONFIG, timestamp_share=0.3, prompt_share=0.6, mixed_tasks=True)
    utterances = fake_utterances(200)
    train = WhisperTrainingSet(utterances, "/nowhere", processor, config, train=True)
    plans = [train.plan(SampleKey(e, 0, i)) for e in range(20) for i in range(200)]
    assert np.mean([p.segments is not None for p in plans]) == pytest.approx(0.3, abs=0.03)
    assert np.mean([bool(p.prompt) for p in plans]) == pytest.approx(0.6, abs=0.03)
    translatable = [p for p in plans if p.index % 2]
    assert np.mean([p.task == "translate" for p in translatable]) == pytest.approx(0.5, abs=0.04)
    assert all(p.task == "transcribe" for p in plans if p.index % 2 == 0)
    assert all(p.text == f"english {p.index}" for p in plans if p.task == "translate")
    prompted = next(p for p in plans if p.prompt and p.index >= 4 and p.task == "transcribe")
    assert prompted.prompt == utterances[prompted.index - 4].text  # same speaker, previous
    assert plans[7] == train.plan(SampleKey(0, 9, 7))  # batch number plays no part
    plan, tokens = train.label(prompted)
    assert tokens.decoder_input_ids[0] == sp.prev and plan == prompted
    one = next(p for p in plans if p.segments is not None)
    assert one.segments == (TimedText(0.0, utterances[one.index].duration, one.text),)
    evaluation = WhisperTrainingSet(utterances, "/nowhere", processor, config)
    assert all(
        evaluation.plan(i).segments is None and not evaluation.plan(i).prompt for i in range(200)
    )


def test_label_falls_back_when_too_long(processor, sp):
    from utils.training.data import WhisperTrainingSet

    config = dataclasses.replace(CONFIG, timestamp_share=1.0, prompt_share=1.0)
    utterances = [dataclasses.replace(u, text=" ".join(["ሰላም"] * 40)) for u in fake_utterances(3)]
    train = WhisperTrainingSet(utterances, "/nowhere", processor, config, train=True)
    plan, tokens = train.label(train.plan(SampleKey(0, 0, 1)))
    assert not plan.prompt and plan.segments is not None and len(tokens) <= 448


def test_collator_pads(processor, sp):
    from utils.training.data import TrainingSample, WhisperCollator

    def sample(n: int, key: int) -> TrainingSample:
        features = np.full((80, 3000), key, dtype=np.float32)
        ids, labels = tuple(range(1, n + 1)), tuple(range(2, n + 2))
        return TrainingSample(f"s{key}", features, ids, labels, "t", "am", "transcribe", 100, 4, 9)

    batch = WhisperCollator(sp.eot)([sample(3, 0), sample(5, 1)])
    assert batch["input_features"].shape == (2, 80, 3000)
    assert batch["input_features"].dtype == torch.float32
    assert batch["decoder_input_ids"].tolist() == [[1, 2, 3, sp.eot, sp.eot], [1, 2, 3, 4, 5]]
    assert batch["labels"].tolist() == [[2, 3, 4, -100, -100], [2, 3, 4, 5, 6]]
    assert batch["labels"].dtype == batch["decoder_input_ids"].dtype == torch.long
    assert (batch["ids"], batch["epoch"], batch["batch"]) == (["s0", "s1"], 4, 9)
    assert batch["texts"] == ["t", "t"] and batch["tasks"] == ["transcribe"] * 2


# ---------------------------------------------------------------- data module


def keys_of(loader) -> list[tuple[int, int, list[str]]]:
    return [(b["epoch"], b["batch"], b["ids"]) for b in loader]


def test_datamodule_splits_and_loaders(tiny_dataset_dir, processor):
    from utils.training.data import WhisperDataModule

    dm = WhisperDataModule(tiny_dataset_dir, CONFIG, processor)
    dm.setup("fit")
    assert [len(x) for x in (dm.train_utterances, dm.val_utterances, dm.test_utterances)] == [
        8, 2, 2,
    ]  # fmt: skip
    assert {u.split for u in dm.val_utterances} == {"validation"} and not dm.notes
    batches = list(dm.train_dataloader())
    assert len(batches) == 3 and sum(len(b["ids"]) for b in batches) == 8
    assert [b["batch"] for b in batches] == [0, 1, 2]
    assert batches[0]["input_features"].shape[1:] == (80, 3000)
    val = list(dm.val_dataloader())
    assert [b["ids"] for b in val] == [[u.id for u in dm.val_utterances]]
    assert val[0]["texts"] == [u.text for u in dm.val_utterances] and val[0]["epoch"] == -1
    assert "train: 8 utterances" in dm.summary() and "batches per epoch: 3" in dm.summary()


def test_holdout_without_validation_split(tiny_dataset_dir, processor, tmp_path):
    from utils.training.data import WhisperDataModule

    def unsplit(us: list[Utterance]) -> list[Utterance]:
        return [dataclasses.replace(u, split="") if u.split == "validation" else u for u in us]

    root = copy_dataset(tiny_dataset_dir, tmp_path / "no-val", unsplit)
    held = []
    for _ in range(2):
        dm = WhisperDataModule(root, CONFIG, processor)
        dm.setup()
        held.append([u.id for u in dm.val_utterances])
        assert len(dm.train_utterances) == 9 and len(dm.test_utterances) == 2
    train_ids = sorted(u.id for u in iter_manifest(root / MANIFEST_NAME) if u.split != "test")
    assert held[0] == held[1] == [min(train_ids, key=lambda i: hashlib.sha1(i.encode()).digest())]
    assert any("held out 1" in note for note in dm.notes)


def test_notes_on_dropped_utterances(tiny_dataset_dir, processor, tmp_path):
    from utils.training.data import WhisperDataModule

    def add_bad(us: list[Utterance]) -> list[Utterance]:
        wordy = [dataclasses.replace(us[0], id=f"wordy{i}", text="ሰላም " * 100) for i in range(2)]
        return [*us, *wordy, dataclasses.replace(us[1], id="long", duration=45.0)]

    dm = WhisperDataModule(copy_dataset(tiny_dataset_dir, tmp_path / "bad", add_bad), CONFIG,
                           processor)  # fmt: skip
    dm.setup()
    assert len(dm.train_utterances) == 8
    assert "train: dropped 2 of 11 utterances: label longer than 448 tokens" in dm.notes
    assert "train: dropped 1 of 11 utterances: audio longer than 30 s" in dm.notes
    assert "label longer than 448" in dm.summary()


def test_bad_datasets_are_named(tiny_dataset_dir, processor, tmp_path):
    from utils.dataset.manifest import ManifestError
    from utils.training.data import WhisperDataModule

    with pytest.raises(ValueError, match=r"empty-dir.*manifest\.jsonl"):
        (tmp_path / "empty-dir").mkdir()
        WhisperDataModule(tmp_path / "empty-dir", CONFIG, processor).setup()
    broken = copy_dataset(tiny_dataset_dir, tmp_path / "broken", lambda us: us)
    (broken / MANIFEST_NAME).write_text('{"id": "x"}\n', "utf-8")
    with pytest.raises(ManifestError, match=r"broken.*:1"):
        WhisperDataModule(broken, CONFIG, processor).setup()
    only_test = copy_dataset(
        tiny_dataset_dir, tmp_path / "only-test",
        lambda us: [dataclasses.replace(u, split="test") for u in us],
    )  # fmt: skip
    with pytest.raises(ValueError, match="only-test: no training utterances"):
        WhisperDataModule(only_test, CONFIG, processor).setup()


def test_workers_give_the_same_batches(tiny_dataset_dir, processor):
    from utils.training.data import WhisperDataModule

    results = []
    for workers in (0, 2):
        config = dataclasses.replace(CONFIG, num_workers=workers, timestamp_share=0.5,
                                     prompt_share=0.5)  # fmt: skip
        dm = WhisperDataModule(tiny_dataset_dir, config, processor, augmenter=noise_augmenter)
        dm.setup()
        loader = dm.train_dataloader()
        assert loader.num_workers == workers and loader.persistent_workers == (workers > 0)
        epochs = []
        for epoch in (0, 1):
            loader.batch_sampler.set_epoch(epoch)
            epochs.append(list(loader))
        results.append(epochs)
    for plain, parallel in zip(results[0], results[1], strict=True):
        for a, b in zip(plain, parallel, strict=True):
            assert a["ids"] == b["ids"] and (a["epoch"], a["batch"]) == (b["epoch"], b["batch"])
            assert torch.equal(a["input_features"], b["input_features"])
            assert torch.equal(a["labels"], b["labels"])
    assert results[0][0][0]["ids"] != results[0][1][0]["ids"] or not torch.equal(
        results[0][0][0]["input_features"], results[0][1][0]["input_features"]
    )


def test_state_dict_round_trip(tiny_dataset_dir, processor):
    from utils.training.data import WhisperDataModule

    config = dataclasses.replace(CONFIG, batch_size=2)
    dm = WhisperDataModule(tiny_dataset_dir, config, processor)
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(1)
    full = keys_of(loader)
    dm.mark_consumed(1, 1)
    dm.mark_consumed(-1, -1)  # a batch from elsewhere: ignored
    assert dm.state_dict() == {"epoch": 1, "next_batch": 2}
    fresh = WhisperDataModule(tiny_dataset_dir, config, processor)
    fresh.load_state_dict(dm.state_dict())  # before the loader exists, as Lightning does
    assert keys_of(fresh.train_dataloader()) == full[2:]
    late = WhisperDataModule(tiny_dataset_dir, config, processor)
    loader = late.train_dataloader()
    late.load_state_dict({"epoch": 1, "next_batch": 3})  # after: the sampler follows
    assert keys_of(loader) == full[3:] and len(loader) == len(full)
    with pytest.raises(ValueError, match="state"):
        late.load_state_dict({"epoch": 1})


def test_packing_and_curriculum(tiny_dataset_dir, processor, sp):
    from utils.training.data import WhisperDataModule

    config = dataclasses.replace(CONFIG, packing=True, curriculum="duration", curriculum_steps=5,
                                 accumulate_grad_batches=2, timestamp_share=1.0)  # fmt: skip
    dm = WhisperDataModule(tiny_dataset_dir, config, processor)
    dm.setup()
    assert dm.packs is not None and len(dm.packs) == len(dm.train_set) == 1  # 8 short ones
    assert sorted(dm.packs[0].members) == list(range(8)) and dm.curriculum_batches() == 10
    sample = dm.train_set[SampleKey(0, 0, 0)]
    assert sample.id.count("+") == 7 and sample.task == "transcribe"
    stamps = [i for i in sample.decoder_input_ids if i >= sp.timestamp_begin]
    assert len(stamps) == 16 and stamps == sorted(stamps)
    assert sample.speech_frames == pytest.approx(dm.packs[0].duration * 100, abs=2)
    # without timestamps (as evaluation decodes): one text of all eight, <|notimestamps|>
    untimed = WhisperDataModule(tiny_dataset_dir, dataclasses.replace(config, timestamp_share=0.0),
                                processor)  # fmt: skip
    untimed.setup()
    bare = untimed.train_set[SampleKey(0, 0, 0)]
    assert not [i for i in bare.decoder_input_ids if i >= sp.timestamp_begin]
    assert sp.no_timestamps in bare.decoder_input_ids and bare.text == sample.text
    plain = dataclasses.replace(config, packing=False, curriculum="difficulty")
    dm = WhisperDataModule(tiny_dataset_dir, plain, processor)
    dm.setup()
    assert dm.difficulty is not None and len(dm.difficulty) == 8
    assert all(0 <= d <= 1 for d in dm.difficulty) and "curriculum by difficulty" in dm.summary()


class Recorder:
    """A LightningModule factory (import inside: keeps collection light) recording batches."""

    @staticmethod
    def module(seen: list):
        import lightning as L

        class Module(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros(1))

            def training_step(self, batch, batch_idx):
                seen.append((self.current_epoch, batch["epoch"], batch["batch"], batch["ids"]))
                self.trainer.datamodule.mark_consumed(batch["epoch"], batch["batch"])
                return (self.w * batch["input_features"].mean()).sum() + self.w.pow(2).sum()

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        return Module()


def fit(dm, seen: list, max_steps: int, root: Path, ckpt: Path | None = None) -> None:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    saver = ModelCheckpoint(root, every_n_train_steps=1, save_top_k=-1, filename="{step}")
    trainer = L.Trainer(
        accelerator="cpu", max_steps=max_steps, logger=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[saver], default_root_dir=root,
    )  # fmt: skip
    trainer.fit(Recorder.module(seen), datamodule=dm, ckpt_path=ckpt)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("workers", [0, 2])
def test_lightning_resume_replays_nothing(tiny_dataset_dir, processor, tmp_path, workers):
    """Checkpoints from a real Trainer.fit, resumed mid-epoch and at an epoch's end, continue
    with exactly the batches of the uninterrupted run (with workers the loader's iterator
    starts drawing before Lightning calls set_epoch)."""
    from utils.training.data import WhisperDataModule

    config = dataclasses.replace(CONFIG, batch_size=2, num_workers=workers)  # 4 batches/epoch
    reference: list = []
    fit(WhisperDataModule(tiny_dataset_dir, config, processor), reference, 7, tmp_path / "ref")
    assert [(e, b) for e, _, b, _ in reference] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0),
                                                    (1, 1), (1, 2)]  # fmt: skip
    assert all(epoch == sampler_epoch for epoch, sampler_epoch, _, _ in reference)
    for step in (2, 4):  # mid-epoch, and at the end of an epoch
        resumed: list = []
        dm = WhisperDataModule(tiny_dataset_dir, config, processor)
        fit(dm, resumed, 7, tmp_path / f"resume{step}", tmp_path / "ref" / f"step={step}.ckpt")
        assert resumed == reference[step:]
