"""Hangul syllables <-> their jamo: the one decomposer the tokenizer, the chat forms and the bot's names use.

A precomposed syllable (U+AC00..U+D7A3) is (lead, vowel, tail) indices into the tables below:
code = 0xAC00 + (lead * 21 + vowel) * 28 + tail. Pure Python, no torch: `bot/naming.py` imports it.
"""

from __future__ import annotations

from collections.abc import Sequence

FIRST, LAST = 0xAC00, 0xD7A3
# Hangul compatibility jamo for the leading, vowel and trailing parts of a syllable.
LEADS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
TAILS = (
    "", "ㄱ", "ㄲ", "ㄳ", "ㄴ", "ㄵ", "ㄶ", "ㄷ", "ㄹ", "ㄺ", "ㄻ", "ㄼ", "ㄽ", "ㄾ",
    "ㄿ", "ㅀ", "ㅁ", "ㅂ", "ㅄ", "ㅅ", "ㅆ", "ㅇ", "ㅈ", "ㅊ", "ㅋ", "ㅌ", "ㅍ", "ㅎ",
)  # fmt: skip


def is_syllable(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3"


def decompose(ch: str) -> tuple[int, int, int]:
    """(lead, vowel, tail) indices of one precomposed syllable (tail 0: none)."""
    index = ord(ch) - FIRST
    return index // 588, (index % 588) // 28, index % 28


def compose(lead: int, vowel: int, tail: int = 0) -> str:
    """The syllable of (lead, vowel, tail) indices."""
    return chr(FIRST + (lead * 21 + vowel) * 28 + tail)


def spell(text: str, leads: Sequence[str], vowels: Sequence[str], tails: Sequence[str]) -> str:
    """Write each Hangul syllable as its lead, vowel and tail spelt by the given tables; others stay."""
    out = []
    for ch in text:
        if is_syllable(ch):
            lead, vowel, tail = decompose(ch)
            out.append(leads[lead] + vowels[vowel] + tails[tail])
        else:
            out.append(ch)
    return "".join(out)


def to_jamo(text: str) -> str:
    """Spell Hangul syllables out as compatibility jamo: 축하 -> ㅊㅜㄱㅎㅏ. Other characters stay."""
    return spell(text, LEADS, VOWELS, TAILS)
