"""Names Discord accepts for what the bot saves: emoji names ``[A-Za-z0-9_]{2,32}``, sticker names 2–30.

Korean text is romanised (a simple Revised Romanization, syllable by syllable) so ``축하해`` becomes
``chukhahae`` rather than an opaque ``emoji_123``; anything left without a usable name falls back to
``emoji_<seed>``.
"""

from __future__ import annotations

import re
import unicodedata

from model.hangul import spell

EMOJI_NAME_RE = re.compile(r"^[A-Za-z0-9_]{2,32}$")

# Revised Romanization of a syllable's jamo, by model.hangul's (lead, vowel, tail) indices.
_INITIALS = [
    "g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch", "k", "t", "p", "h",
]  # fmt: skip
_VOWELS = [
    "a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo",
    "u", "wo", "we", "wi", "yu", "eu", "ui", "i",
]  # fmt: skip
_FINALS = [
    "", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l",
    "m", "p", "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t",
]  # fmt: skip


def romanize(text: str) -> str:
    """Romanise Hangul syllables; other characters pass through unchanged.

    Syllables are joined without the sound-change rules of full RR (``축하`` → ``chukha``), which
    keeps the mapping predictable and reversible enough to recognise the word.
    """
    return spell(text, _INITIALS, _VOWELS, _FINALS)


def emoji_name(text: str, seed: int) -> str:
    """A valid custom-emoji name from the text, or ``emoji_<seed>`` when nothing usable is left."""
    ascii_text = unicodedata.normalize("NFKD", romanize(text)).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_").lower()[:32].strip("_")
    if not EMOJI_NAME_RE.match(name):
        name = f"emoji_{seed}"[:32]
    return name


def sticker_name(text: str, seed: int) -> str:
    """Stickers allow any characters, 2–30 of them: keep the text itself when it fits."""
    name = " ".join(text.split())[:30].strip()
    return name if len(name) >= 2 else emoji_name(text, seed)
