"""Reading a text as a thing plus modifiers: what generator v3 composes from."""

from __future__ import annotations

import pytest

from model.modifiers import BY_KEY, KINDS, VOCAB, Modifiers, describe, read_modifiers


@pytest.mark.parametrize(
    ("text", "base", "keys"),
    [
        ("파란 고양이", "고양이", {"blue"}),
        ("blue cat", "cat", {"blue"}),
        ("우는 피자", "피자", {"crying"}),
        ("crying pizza", "pizza", {"crying"}),
        ("왕관 쓴 고양이", "고양이", {"crown"}),
        ("왕관을 쓴 펭귄", "펭귄", {"crown"}),
        ("cat with a crown", "cat", {"crown"}),
        ("cat wearing a crown", "cat", {"crown"}),
        ("고양이 + 왕관", "고양이", {"crown"}),
        ("🐱 + 👑", "🐱", {"crown"}),
        ("🐱👑", "🐱", {"crown"}),
        ("파란색의 자동차", "자동차", {"blue"}),
        ("졸린 아보카도", "아보카도", {"sleepy"}),
        ("dog in love", "dog", {"in-love"}),
        ("crying blue donut with a crown", "donut", {"crying", "blue", "crown"}),
        ("분홍 고양이 + 학사모", "고양이", {"pink", "graduation-cap"}),
    ],
)
def test_texts_read_as_a_thing_and_its_modifiers(text, base, keys):
    reading = read_modifiers(text)
    assert reading.base == base
    assert {m.key for m in reading.modifiers.named()} == keys


@pytest.mark.parametrize(
    "text", ["축하해", "sad", "왕관", "happy birthday", "pizza + 🍍", "c++", "1+1", "blue"]
)
def test_texts_without_a_thing_and_a_modifier_read_as_themselves(text):
    reading = read_modifiers(text)
    assert reading.base == text
    assert not reading.modifiers


def test_every_modifier_has_korean_and_english_words_and_a_unique_key():
    keys = [m.key for kind in KINDS for m in VOCAB[kind]]
    assert len(keys) == len(set(keys)) == len(BY_KEY)
    for kind in KINDS:
        for mod in VOCAB[kind]:
            assert any(not w.isascii() for w in mod.words), mod.key
            assert any(w.isascii() for w in mod.words), mod.key
            assert (mod.emoji != "") == (kind != "colour"), mod.key


def test_modifier_ids_start_at_one_and_describe_in_either_language():
    mods = Modifiers.of("blue", "crown")
    assert mods.ids() == (BY_KEY["blue"][1], 0, BY_KEY["crown"][1])
    assert min(i for i in mods.ids() if i) >= 1
    assert describe(mods) == "blue, crown"
    assert describe(mods, "ko") == "파란, 왕관"
