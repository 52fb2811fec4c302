"""The tokenizer must treat Hangul properly and never fail on anything people type."""

import random

import pytest

from model.chat import conjugate
from model.hangul import to_jamo
from model.prompt import MAX_TEXT_CHARS
from model.text import Tokenizer

NAMES = {"🐱": "cat face", "❤️": "red heart", "❤": "red heart", "👑": "crown"}


@pytest.fixture
def tok() -> Tokenizer:
    return Tokenizer(buckets=1 << 15, emoji_names=NAMES)


def shared(tok: Tokenizer, a: str, b: str) -> int:
    return len(set(tok.item_ids(a)) & set(tok.item_ids(b)))


def test_jamo_spelling_splits_syllables():
    assert to_jamo("축하") == "ㅊㅜㄱㅎㅏ"
    assert to_jamo("abc 1") == "abc 1"


def test_conjugated_forms_share_pieces_with_their_keyword(tok):
    # 배고파 and 배고픈 share syllables and jamo; an unrelated word shares (almost) nothing
    assert shared(tok, "배고파", "배고픈") > 8
    assert shared(tok, "축하해", "축하") > 6
    assert shared(tok, "배고파", "고양이") < shared(tok, "배고파", "배고픈") // 3


def test_chat_shorthand_matches_the_syllables_it_stands_for(tok):
    assert shared(tok, "ㅋㅋ", "크크") > 0


def test_emoji_inside_text_reads_as_its_name(tok):
    assert tok.words("🐱 축하해") == ["cat", "face", "축하해"]
    assert tok.words("❤️") == tok.words("red heart")


def test_control_characters_and_zalgo_are_dropped(tok):
    assert tok.words("\x00hi\x07 \u200bthere\n") == ["hi", "there"]
    assert tok.words("Z̴̡͓a̷l̸g̵o̶") == ["zalgo"]


def test_latin_is_lowercased_digits_kept_and_stretches_squeezed(tok):
    assert tok.words("LOL 2024 ㅋㅋㅋㅋㅋㅋ Sooooo") == ["lol", "2024", "ㅋㅋㅋ", "sooo"]


def test_long_input_is_truncated(tok):
    assert len(tok.normalize("가" * 5000)) == MAX_TEXT_CHARS


def test_never_fails_on_random_unicode(tok):
    rng = random.Random(0)
    for _ in range(300):
        text = "".join(chr(rng.randrange(0, 0x2FFFF)) for _ in range(rng.randrange(0, 60)))
        text = "".join(ch for ch in text if not 0xD800 <= ord(ch) <= 0xDFFF)
        batch = tok.encode([text])
        assert len(batch["offsets"]) >= 1  # an empty text still yields one (empty) item


def test_items_include_word_pairs(tok):
    assert "ice cream" in tok.items("I want ice cream")


def test_korean_conjugation_of_regular_forms():
    assert "행복해" in conjugate("행복한")
    assert "배고파" in conjugate("배고픈")
    assert "슬퍼" in conjugate("슬픈")
    assert "무서워" in conjugate("무서운")
    assert "좋아" in conjugate("좋은")
    assert conjugate("고양이") == []
