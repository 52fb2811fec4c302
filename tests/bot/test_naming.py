"""Emoji and sticker names Discord accepts, from Korean, English and emoji-only text."""

from __future__ import annotations

import pytest

from bot.naming import EMOJI_NAME_RE, emoji_name, romanize, sticker_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("축하해", "chukhahae"),
        ("고양이", "goyangi"),
        ("사랑해", "saranghae"),
        ("배고파", "baegopa"),
        ("닭", "dak"),
        ("한글 abc", "hangeul abc"),
    ],
)
def test_romanize(text, expected):
    assert romanize(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("축하해", "chukhahae"),
        ("생일 축하해!", "saengil_chukhahae"),
        ("Party Cat", "party_cat"),
        ("café time", "cafe_time"),
        ("🎉🎉", "emoji_42"),
        ("!", "emoji_42"),
        ("a", "emoji_42"),
        ("가" * 100, "ga" * 16),
    ],
)
def test_emoji_name(text, expected):
    name = emoji_name(text, 42)
    assert name == expected and EMOJI_NAME_RE.match(name)


def test_sticker_name_keeps_the_text_when_it_fits():
    assert sticker_name("생일 축하해", 1) == "생일 축하해"
    assert len(sticker_name("가" * 100, 1)) == 30
    assert sticker_name("🎉", 7) == "emoji_7"
