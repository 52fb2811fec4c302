"""Modifiers: what a text says *about* its thing — a colour, a face, an accessory — read apart from the thing.

    "파란 고양이" / "blue cat"          -> base "고양이" / "cat",   colour blue
    "우는 피자" / "crying pizza"        -> base "피자" / "pizza",   face crying
    "왕관 쓴 고양이" / "cat with a crown" -> base "고양이" / "cat", accessory crown
    "🐱 + 👑", "🐱👑", "고양이 + 왕관"    -> base "🐱" / "고양이",   accessory crown

This is the interface between the text side and generator v3 (model.composer): the text side reads the base
as before (p(group | base text)); the modifiers become ids the composer embeds next to the group. A base with
no modifier reads as it always did. The vocabulary is small on purpose: each modifier is one the data kitchen
(model.kitchen) can make training images for, so the generator has seen every modifier on many things.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from model.hangul import is_syllable

KINDS = ("colour", "expression", "accessory")


@dataclass(frozen=True)
class Modifier:
    """One modifier: its key, kind, the emoji it is taken from (faces, accessories) or its RGB (colours)."""

    key: str
    kind: str
    words: tuple[str, ...]  # Korean and English words that name it, lower case
    emoji: str = ""
    rgb: tuple[int, int, int] = (0, 0, 0)


def _colour(key: str, rgb: tuple[int, int, int], *words: str) -> Modifier:
    return Modifier(key, "colour", words, rgb=rgb)


def _face(key: str, emoji: str, *words: str) -> Modifier:
    return Modifier(key, "expression", words, emoji=emoji)


def _accessory(key: str, emoji: str, *words: str) -> Modifier:
    return Modifier(key, "accessory", words, emoji=emoji)


VOCAB: dict[str, tuple[Modifier, ...]] = {
    "colour": (
        _colour("red", (222, 46, 46), "빨간", "빨강", "빨간색", "붉은", "red"),
        _colour("orange", (247, 140, 30), "주황", "주황색", "주황빛", "orange"),
        _colour("yellow", (250, 205, 45), "노란", "노랑", "노란색", "yellow"),
        _colour("green", (58, 176, 72), "초록", "초록색", "녹색", "초록빛", "green"),
        _colour("blue", (44, 118, 232), "파란", "파랑", "파란색", "푸른", "blue"),
        _colour("purple", (146, 72, 204), "보라", "보라색", "보랏빛", "purple", "violet"),
        _colour("pink", (246, 118, 178), "분홍", "분홍색", "핑크", "핑크색", "pink"),
    ),
    "expression": (
        _face(
            "crying", "😭", "우는", "울고", "울고있는", "울고 있는", "엉엉 우는", "crying", "cry", "sobbing"
        ),
        _face("sad", "😢", "슬픈", "눈물 흘리는", "sad", "tearful"),
        _face("smiling", "😊", "웃는", "웃고있는", "웃고 있는", "미소 짓는", "smiling", "smiley"),
        _face("laughing", "😆", "빵터진", "깔깔", "깔깔 웃는", "laughing"),
        _face("angry", "😠", "화난", "화가 난", "빡친", "성난", "angry", "mad"),
        _face("surprised", "😮", "놀란", "surprised", "shocked"),
        _face("sleepy", "😴", "졸린", "자는", "잠자는", "sleepy", "sleeping"),
        _face(
            "in-love", "😍", "사랑에 빠진", "하트눈", "반한", "in love", "loving", "heart-eyed", "lovestruck"
        ),
        _face(
            "cool",
            "😎",
            "선글라스",
            "선글라스 낀",
            "선글라스 쓴",
            "쿨한",
            "멋진",
            "cool",
            "sunglasses",
            "with sunglasses",
        ),
        _face("winking", "😉", "윙크하는", "winking"),
        _face("pleading", "🥺", "애원하는", "글썽이는", "pleading", "puppy-eyed"),
        _face("sick", "🤒", "아픈", "열나는", "sick", "feverish"),
    ),
    "accessory": (
        _accessory("crown", "👑", "왕관", "왕관 쓴", "crown", "crowned", "with a crown", "wearing a crown"),
        _accessory(
            "top-hat", "🎩", "모자", "모자 쓴", "중절모", "실크햇", "hat", "top hat", "with a top hat"
        ),
        _accessory("ribbon", "🎀", "리본", "리본 단", "ribbon", "bow", "with a ribbon", "with a bow"),
        _accessory("graduation-cap", "🎓", "학사모", "학사모 쓴", "graduation cap", "with a graduation cap"),
        _accessory(
            "cap", "🧢", "야구모자", "야구모자 쓴", "캡모자", "캡 모자", "cap", "baseball cap", "with a cap"
        ),
    ),
}
SIZES = {kind: len(VOCAB[kind]) + 1 for kind in KINDS}  # embedding rows per kind; 0 is "none"

# Read but not drawn yet: no kitchen part makes them, so v3 has no embedding for them (the text side still
# reports them, model.reading, and they are taken out of the base text)
TEXT_ONLY: tuple[Modifier, ...] = (
    _colour("black", (30, 30, 30), "검은", "검정", "까만", "검은색", "black"),
    _colour("white", (245, 245, 245), "하얀", "흰", "흰색", "하얀색", "white"),
    _colour("brown", (130, 80, 40), "갈색", "brown"),
    _colour("gold", (230, 180, 40), "금색", "황금", "golden", "gold"),
    Modifier("scared", "expression", ("무서워하는", "겁먹은", "scared")),
    Modifier("glasses", "accessory", ("안경", "안경 쓴", "안경 낀", "glasses")),
    Modifier("mask", "accessory", ("마스크", "마스크 쓴", "mask", "masked")),
    Modifier("party-hat", "accessory", ("고깔모자", "party hat")),
    *(
        Modifier(key, "action", words)
        for key, words in (
            ("running", ("달리는", "뛰는", "running")),
            ("dancing", ("춤추는", "dancing")),
            ("flying", ("나는", "날아가는", "flying")),
            ("eating", ("먹는", "eating")),
            ("swimming", ("수영하는", "swimming")),
            ("singing", ("노래하는", "singing")),
        )
    ),
    *(
        Modifier(key, "count", words)
        for key, words in (
            ("2", ("두", "두 마리", "두 개", "two", "2")),
            ("3", ("세", "세 마리", "세 개", "three", "3")),
            ("many", ("여러", "많은", "many", "lots of")),
        )
    ),
)

# Joining words around a modifier ("cat *with a* crown", "왕관*을 쓴* 고양이"): dropped with it.
GLUE_WORDS = frozenset(["with", "wearing", "in", "a", "an", "the", "and", "쓴", "낀", "단", "을", "를"])
_PARTICLE = re.compile(r"(을|를|이|가|은|는|의)$")


@dataclass(frozen=True)
class Modifiers:
    """Ids per drawable kind, 0 = none: what the composer embeds."""

    colour: int = 0
    expression: int = 0
    accessory: int = 0

    def ids(self) -> tuple[int, int, int]:
        return (self.colour, self.expression, self.accessory)

    def __bool__(self) -> bool:
        return any(self.ids())

    def named(self) -> list[Modifier]:
        """The modifiers themselves, for display and the kitchen."""
        return [VOCAB[kind][i - 1] for kind, i in zip(KINDS, self.ids(), strict=True) if i]

    @classmethod
    def of(cls, *keys: str) -> Modifiers:
        """Modifiers.of("blue", "crown"): drawable keys only; the first of a kind wins."""
        ids = dict.fromkeys(KINDS, 0)
        for key in keys:
            if key in BY_KEY:
                kind, index = BY_KEY[key]
                ids[kind] = ids[kind] or index
        return cls(**ids)


BY_KEY: dict[str, tuple[str, int]] = {
    m.key: (kind, i + 1) for kind, mods in VOCAB.items() for i, m in enumerate(mods)
}
_ALL = [m for kind in KINDS for m in VOCAB[kind]] + list(TEXT_ONLY)
_PHRASES: list[tuple[tuple[str, ...], Modifier]] = sorted(
    ((tuple(w.split()), m) for m in _ALL for w in m.words), key=lambda p: -len(p[0])
)  # longest phrase first: "in love" before "in", "왕관 쓴" before "왕관"
_EMOJI: dict[str, Modifier] = {m.emoji: m for m in VOCAB["expression"] + VOCAB["accessory"]}


@dataclass(frozen=True)
class Found:
    """One modifier said in the text, and the span [start, end) of the words that say it."""

    modifier: Modifier
    span: tuple[int, int]


@dataclass(frozen=True)
class Reading:
    """A text read as a base thing plus modifiers; `base` is the text the group prior reads.

    found: every modifier the text says, in text order (text-only ones too); modifiers: the drawable ones.
    """

    base: str
    found: tuple[Found, ...] = ()

    @property
    def modifiers(self) -> Modifiers:
        return Modifiers.of(*(f.modifier.key for f in self.found))


def _strip_vs(text: str) -> str:
    return text.replace("\ufe0f", "")


def _normal(word: str) -> str:
    """A word as phrases are matched: lower case, end punctuation and a trailing Korean particle off."""
    word = word.lower().strip("!?.,~")
    return _PARTICLE.sub("", word) if len(word) > 1 and all(map(is_syllable, word)) else word


def _modifier_only(part: str) -> Modifier | None:
    """The modifier a whole `+` part names ("왕관", "👑", "blue"), else None."""
    bare = _strip_vs(part.strip())
    if bare in _EMOJI:
        return _EMOJI[bare]
    low = tuple(w.lower() for w in bare.split())
    words = tuple(_normal(w) for w in bare.split())
    return next((m for phrase, m in _PHRASES if phrase in (low, words)), None)


def _plus_reading(text: str) -> Reading | None:
    """`A + B (+ C)`: the parts after the first that each name a modifier; None unless all do."""
    parts = text.split("+")
    found, offset = [], len(parts[0]) + 1
    for part in parts[1:]:
        mod = _modifier_only(part)
        if part.strip() and mod is None:
            return None
        if mod is not None:
            found.append(Found(mod, (offset, offset + len(part))))
        offset += len(part) + 1
    left = parts[0].strip()
    if not left or not found:
        return None
    inner = _emoji_reading(left) or _word_reading(left)  # "분홍 고양이 + 학사모": the left has its own
    return Reading(inner.base, inner.found + tuple(found))


def _emoji_reading(text: str) -> Reading | None:
    """Two emoji with no space needed: a thing and a face or accessory emoji ("🐱👑")."""
    bare = _strip_vs(text.strip())
    for emoji, mod in _EMOJI.items():
        head = bare[: -len(emoji)].strip()
        if bare.endswith(emoji) and head and not any(ch.isalnum() for ch in head):  # only emoji before it
            return Reading(head, (Found(mod, (len(bare) - len(emoji), len(bare))),))
    return None


def _word_reading(text: str) -> Reading:
    """Modifier phrases anywhere among the words, their glue words dropped; the rest is the base."""
    tokens = list(re.finditer(r"\S+", text))
    low = [t.group().lower().strip("!?.,~") for t in tokens]
    norm = [_normal(t.group()) for t in tokens]  # "왕관을" -> "왕관", but "우는" must also match as it is
    used = [False] * len(tokens)
    found: list[Found] = []
    for phrase, mod in _PHRASES:
        n = len(phrase)
        for i in range(len(tokens) - n + 1):
            if not any(used[i : i + n]) and phrase in (tuple(low[i : i + n]), tuple(norm[i : i + n])):
                found.append(Found(mod, (tokens[i].start(), tokens[i + n - 1].end())))
                used[i : i + n] = [True] * n
    kept = [t.group() for t, u, w in zip(tokens, used, low, strict=True) if not u and w not in GLUE_WORDS]
    if not found or not any(any(ch.isalnum() for ch in w) for w in kept):
        return Reading(text)  # "sad", "왕관", "cool cool": the modifier is the thing itself
    return Reading(" ".join(kept), tuple(sorted(found, key=lambda f: f.span)))


def read_modifiers(text: str) -> Reading:
    """The base thing and its modifiers; a text with no modifier (or nothing but one) reads as itself."""
    text = unicodedata.normalize("NFC", text).strip()
    if "+" in text:
        return _plus_reading(text) or Reading(text)
    return _emoji_reading(text) or _word_reading(text)


def describe(mods: Modifiers, lang: str = "en") -> str:
    """The modifiers as words ("blue, crown"), for logs and grids."""
    return ", ".join(next(w for w in m.words if w.isascii() == (lang == "en")) for m in mods.named())
