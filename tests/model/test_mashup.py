"""Mashups: `A + B`, two emoji or "crying pizza" give one emoji that shows both things."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.checkpoint import SHIPPED_CHECKPOINT
from model.data import RESOURCES, load_or_build, read_tsv
from model.evaluate import NearestEmoji
from model.mashup import Mashup, compose, explicit_parts
from model.sample import Generator
from model.text import Tokenizer

TOKENIZER = Tokenizer(1 << 10, {"🐱": "cat", "👑": "crown", "🍕": "pizza", "👍🏽": "thumbs up"})


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("고양이 + 왕관", Mashup("고양이", "왕관")),
        ("cat+crown", Mashup("cat", "crown")),
        ("🐱👑", Mashup("🐱", "👑")),
        ("🍕 👍🏽", Mashup("🍕", "👍🏽")),
        ("c++", None),
        ("1+1", None),
        ("+ 왕관", None),
        ("🐱", None),
        ("🐱👑🍕", None),
        ("고양이 왕관", None),  # plain words are the model's call, not the parser's
    ],
)
def test_explicit_mashups_are_plus_or_exactly_two_emoji(text, parts):
    assert explicit_parts(text, TOKENIZER) == parts


def solid(colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGBA", (72, 72), (*colour, 255))


def test_composition_keeps_the_base_big_and_sets_the_modifier_as_an_outlined_badge():
    image = compose(solid((255, 0, 0)), solid((0, 0, 255)))
    rgba = np.asarray(image)
    assert image.size == (72, 72) and image.mode == "RGBA"
    assert tuple(rgba[10, 10]) == (255, 0, 0, 255)  # base at the top left
    assert tuple(rgba[62, 62]) == (0, 0, 255, 255)  # modifier at the bottom right
    red, blue = (rgba[..., 0] > 200) & (rgba[..., 2] < 50), (rgba[..., 2] > 200) & (rgba[..., 0] < 50)
    assert red.sum() > blue.sum() > 0
    white = (rgba[..., :3] > 240).all(-1) & (rgba[..., 3] > 200)
    assert white.sum() > 50  # the sticker outline between them


shipped_only = pytest.mark.skipif(not SHIPPED_CHECKPOINT.is_file(), reason="no shipped checkpoint")

MASHUPS = [
    ("고양이 + 왕관", "고양이", "왕관"),
    ("🍕😭", "pizza", "cry"),
    ("ghost + sunglasses", "ghost", "sunglasses"),
    ("🤖❤️", "robot", "heart"),
    ("crying pizza", "pizza", "cry"),
    ("donut + fire", "donut", "fire"),
]


@pytest.fixture(scope="module")
def shipped() -> Generator:
    return Generator.load(None, "cpu")


@pytest.fixture(scope="module")
def real_emoji(tmp_path_factory):
    return load_or_build(Path(tmp_path_factory.mktemp("data")) / "dataset.npz")


def acceptable(dataset, word: str) -> set[int]:
    return {g for t, g in zip(dataset.pair_texts, dataset.pair_groups.tolist(), strict=True) if t == word}


@shipped_only
def test_two_word_mashups_are_read_only_when_the_words_are_two_things(shipped):
    assert shipped.mashup("crying pizza") == Mashup("pizza", "crying")
    two_words = [r[0] for r in read_tsv(RESOURCES / "chat_prompts_eval.tsv") if len(r[0].split()) == 2]
    assert len(two_words) >= 10
    for text in [*two_words, "pizza time", "rainy day", "진짜 대박", "happy birthday", "생일 축하해"]:
        assert shipped.mashup(text) is None, text


@shipped_only
def test_a_mashup_looks_like_its_parts_far_more_often_than_chance(shipped, real_emoji):
    nearest = NearestEmoji(real_emoji)
    hits = badge_hits = total = 0
    chance = 0.0
    for text, base, modifier in MASHUPS:
        ok_base, ok_mod = acceptable(real_emoji, base), acceptable(real_emoji, modifier)
        assert ok_base and ok_mod, (base, modifier)
        images = shipped.generate([text], count=2, seed=0)[0]
        whole = nearest.groups(np.stack([np.asarray(im) for im in images]))
        badges = nearest.groups(np.stack([np.asarray(im)[36:, 36:] for im in images]))
        hits += sum(int(g) in ok_base | ok_mod for g in whole)
        badge_hits += sum(int(g) in ok_mod for g in badges)
        total += len(images)
        chance += len(ok_base | ok_mod) / real_emoji.num_groups * len(images)
    assert hits / total >= 0.6 and hits > 10 * chance, (hits, total, chance)
    assert badge_hits / total >= 0.4, badge_hits  # and the other part is there too


@shipped_only
def test_mashups_are_deterministic_and_do_not_depend_on_batch_mates(shipped):
    alone = shipped.generate(["고양이 + 왕관"], 2, seed=4)[0]
    batched = shipped.generate_batch([("피자", 1, 1), ("고양이 + 왕관", 2, 4)])[1]
    assert [im.tobytes() for im in alone] == [im.tobytes() for im in batched]
