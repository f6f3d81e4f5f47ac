"""The Ge'ez-aware vocabulary (issue 8), tokenizer side: one token per Ethiopic character with
the same vocabulary size and special ids, exact round trips on every script, and only tokens
the reference corpus never uses given up."""

from __future__ import annotations

import json
import random
import struct

import pytest

from augmentation.tts import CORPUS
from utils.geez_vocab.alphabet import (
    byte_alphabet,
    byte_string,
    ethiopic_characters,
    geez_tokens,
)
from utils.geez_vocab.corpus import catalog_strings, reference_corpus
from utils.geez_vocab.prior import judged_by_words
from utils.geez_vocab.selection import choose_given_up, non_speech_ids, token_use
from utils.geez_vocab.tokenizer_edit import (
    EMPTY_TOKEN_ID,
    Swap,
    VocabularyEditError,
    edit_ct2_vocabulary,
    edit_tokenizer,
    leaf_ranks,
    load_tokenizer,
    restore_tokenizer,
)

# Scripts sharing the E1 lead byte with Ethiopic, Ethiopic's other blocks, and more.
RANGES = [(0x10A0, 0x10FF), (0x1780, 0x17FF), (0x13A0, 0x13FF), (0x1E00, 0x1EFF),
          (0x1380, 0x139F), (0x2D80, 0x2DDF), (0xAB00, 0xAB2F), (0x1E7E0, 0x1E7FF),
          (0x4E00, 0x4FFF), (0x1F600, 0x1F64F), (0x1200, 0x137F), (0x20, 0x7E)]  # fmt: skip


def amharic_sentences() -> list[str]:
    rows = CORPUS.read_text(encoding="utf-8").splitlines()[1:]
    return [row.split("\t")[2] for row in rows]


def ethiopic_count(text: str) -> int:
    return sum(ord(c) in range(0x1200, 0x1380) for c in text)


@pytest.fixture(scope="module")
def original(default_model_dir) -> dict:
    return json.loads((default_model_dir / "tokenizer.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def small_corpus():
    return reference_corpus(every=10)  # 425 catalogs: a test-sized corpus


@pytest.fixture(scope="module")
def geez(geez_model, default_model_dir):
    """(edited tokenizer.json, swaps, protected ids) of the session's Ge'ez model."""
    provenance = json.loads((geez_model.hf_dir / "geez_vocab.json").read_text(encoding="utf-8"))
    edited = json.loads((geez_model.hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    config = json.loads((default_model_dir / "config.json").read_text(encoding="utf-8"))
    protected = config["suppress_ids"] + config["suppress_ids_begin"]
    return edited, tuple(Swap.from_dict(item) for item in provenance["given_up"]), protected


def test_the_byte_alphabet_and_the_new_tokens():
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    assert byte_alphabet() == bytes_to_unicode()
    assert byte_string("ሀ") == "áĪĢ" and len(ethiopic_characters()) == 358
    tokens = geez_tokens(["ሰ", "አ"])
    assert len(tokens) == 6 + 358 + 2 and [t.text[1] for t in tokens[:6]] == list("ĪīĬĭĮį")
    assert all(t.merge[0] + t.merge[1] == t.text for t in tokens)
    assert tokens[-1].text == "Ġ" + byte_string("አ")
    with pytest.raises(ValueError, match="Ethiopic"):
        geez_tokens(["a"])


def test_one_token_per_ethiopic_character_with_ids_and_size_unchanged(original, geez):
    edited, swaps, _ = geez
    old, new = load_tokenizer(original), load_tokenizer(edited)
    held_out = " ".join(amharic_sentences()[1::2])
    old_ids = old.encode(held_out, add_special_tokens=False).ids
    new_ids = new.encode(held_out, add_special_tokens=False).ids
    rate_old, rate_new = (len(ids) / ethiopic_count(held_out) for ids in (old_ids, new_ids))
    print(f"tokens per Ethiopic character: {rate_old:.2f} -> {rate_new:.2f}")
    assert rate_old > 2.5 and rate_new <= 1.1
    assert new.get_vocab_size() == old.get_vocab_size() == 51865
    assert edited["added_tokens"] == original["added_tokens"]  # special and timestamp ids
    assert len(swaps) == 428 and max(s.id for s in swaps) < EMPTY_TOKEN_ID


def test_exact_round_trips_on_every_script(original, geez):
    new = load_tokenizer(geez[0])
    rng = random.Random(8)
    strings = [*amharic_sentences(), "The pound key, then # and 42.", "  two  spaces "]
    for _ in range(100_000):
        pieces = [chr(rng.randint(*rng.choice(RANGES))) for _ in range(rng.randint(1, 12))]
        strings.append("".join(p if rng.random() > 0.2 else " " + p for p in pieces))
    encodings = new.encode_batch(strings, add_special_tokens=False)
    decoded = new.decode_batch([e.ids for e in encodings], skip_special_tokens=False)
    wrong = [(s, d) for s, d in zip(strings, decoded, strict=True) if s != d]
    assert not wrong, wrong[:3]


def test_only_unused_leaves_outside_the_suppressed_ids_are_given_up(original, small_corpus, geez):
    edited, swaps, protected = geez
    leaves = leaf_ranks(original)
    choosing, _ = small_corpus.halves(seed=0)
    used = token_use(original, choosing)
    barred = set(protected) | non_speech_ids(original) | {EMPTY_TOKEN_ID}
    assert all(s.old in leaves and not used[s.id] and s.id not in barred for s in swaps)
    decoder = load_tokenizer(original)
    assert all(judged_by_words(decoder.decode([s.id])) for s in swaps)
    assert restore_tokenizer(edited, swaps) == original


def test_the_choice_follows_the_prior_then_the_latest_merge(original, small_corpus):
    choosing, _ = small_corpus.halves(seed=0)
    ids = choose_given_up(original, 40, choosing[:20_000], priors={})
    ranks = leaf_ranks(original)
    by_id = {index: token for token, index in original["model"]["vocab"].items()}
    assert [ranks[by_id[i]] for i in ids] == sorted((ranks[by_id[i]] for i in ids), reverse=True)
    disliked = {ids[0]: 1.0}  # a prior moves the latest merge to the back
    assert choose_given_up(original, 40, choosing[:20_000], priors=disliked)[-1] != ids[0]
    again = choose_given_up(original, 40, choosing[:20_000], priors={})
    assert again == ids  # reproducible


@pytest.mark.parametrize(
    ("text", "judged"),
    [(" capacitance", True), (" INTERVIEWER", True), ("ÿÿ\ufffd", True), (" iPhone", False),
     (" 1953", False), (" Straßen", False), (" 다양한", False), ("...?", False), ("是這樣", False)],
)  # fmt: skip
def test_what_word_frequencies_can_judge(text, judged):
    assert judged_by_words(text) is judged


def test_the_rules_of_the_edit_are_enforced(original):
    new_tokens = geez_tokens()[:1]
    vocab = original["model"]["vocab"]
    not_a_leaf = vocab["Ġthe"]
    for index, rule in [(EMPTY_TOKEN_ID, "never 50256"), (not_a_leaf, "not a leaf"),
                        (vocab["a"], "not a leaf"), (51000, "regular ids")]:  # fmt: skip
        with pytest.raises(VocabularyEditError, match=rule):
            edit_tokenizer(original, new_tokens, [index])
    with pytest.raises(VocabularyEditError, match="distinct"):
        edit_tokenizer(original, geez_tokens()[:2], [300, 300])


def test_ctranslate2_vocabulary_gets_the_same_swaps(default_model_dir, geez):
    vocabulary = json.loads((default_model_dir / "vocabulary.json").read_text(encoding="utf-8"))
    edited = edit_ct2_vocabulary(vocabulary, geez[1])
    tokenizer_vocab = geez[0]["model"]["vocab"]
    assert len(edited) == len(vocabulary)
    assert all(edited[index] == token for token, index in tokenizer_vocab.items())
    with pytest.raises(VocabularyEditError, match="holds"):
        edit_ct2_vocabulary(edited, geez[1])  # the old tokens are gone


def test_catalogs_are_read_and_bad_files_give_nothing(tmp_path):
    keys, values = [b"", b"Open"], [b"Project-Id-Version: x\n", "ክፈት".encode()]
    offsets, blob = [], b""
    start = 28 + 16 * len(keys)
    for data in keys + values:
        offsets.append((len(data), start + len(blob)))
        blob += data + b"\x00"
    header = struct.pack("<7I", 0x950412DE, 0, len(keys), 28, 28 + 8 * len(keys), 0, 0)
    table = b"".join(struct.pack("<2I", *o) for o in offsets)
    catalog = tmp_path / "am.mo"
    catalog.write_bytes(header + table + blob)
    assert list(catalog_strings(catalog)) == ["Project-Id-Version: x\n", "ክፈት"]
    (tmp_path / "bad.mo").write_bytes(b"not a catalog at all")
    assert list(catalog_strings(tmp_path / "bad.mo")) == []


def test_the_corpus_splits_reproducibly(small_corpus):
    choosing, held_out = small_corpus.halves(seed=0)
    assert set(choosing).isdisjoint(held_out) and len(choosing) + len(held_out) == len(
        small_corpus.texts
    )
    assert 0.45 < len(choosing) / len(small_corpus.texts) < 0.55
    assert small_corpus.halves(seed=0) == (choosing, held_out) != small_corpus.halves(seed=1)
    assert reference_corpus(every=10).fingerprint == small_corpus.fingerprint
