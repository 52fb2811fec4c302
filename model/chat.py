"""Make CLDR keywords look like chat: phrase templates, conjugated forms and chat noise.

CLDR says 배고픈 얼굴 and "hungry"; people type "아 배고파 ㅠㅠ" and "so hungry lol". Training the text
encoder on keywords placed inside such phrases teaches its attention to find the content word and to
ignore the rest. Templates carry no meaning of their own.
"""

from __future__ import annotations

import random

from model.hangul import LEADS, TAILS, VOWELS, compose, decompose, is_syllable

KO_TEMPLATES = (
    "{}",
    "{}",
    "{}",
    "오늘 너무 {}",
    "진짜 {}",
    "나 {}",
    "{} ㅋㅋ",
    "{} ㅋㅋㅋ",
    "{} ㅠㅠ",
    "와 {}",
    "헐 {}",
    "{}!!",
    "완전 {}",
    "{} 이모지",
    "우리 {}",
    "{} 좋아",
    "{} 최고",
    "아 {}",
    "{} 보여줘",
    "이거 {}",
    "{}요",
    "{} 같아",
    "지금 {}",
    "{} 느낌",
    "너무너무 {}",
    "{} 그 자체",
    "오늘은 {}",
    "{} 했어",
    "{} 하고 싶다",
)
EN_TEMPLATES = (
    "{}",
    "{}",
    "{}",
    "so {}",
    "{} lol",
    "omg {}",
    "i love {}",
    "my {}",
    "a {}",
    "feeling {}",
    "{}!!",
    "the {}",
    "{} time",
    "literally {}",
    "{} vibes",
    "{} mood",
    "look at this {}",
    "some {}",
    "very {}",
    "{} haha",
    "just {}",
    "{} emoji",
    "i'm {}",
    "{} today",
    "such a {}",
    "totally {}",
    "need {}",
)


def is_korean(text: str) -> bool:
    return any(is_syllable(ch) or "ㄱ" <= ch <= "ㅣ" for ch in text)


def _bright(ch: str) -> bool:
    """Vowel harmony: ㅏ/ㅗ stems take 아, the others 어."""
    return is_syllable(ch) and VOWELS[decompose(ch)[1]] in "ㅏㅗㅑ"


def conjugate(word: str) -> list[str]:
    """Colloquial forms of a Korean adjective/verb keyword: 행복한 -> 행복해, 행복하다; 슬픈 -> 슬퍼.

    Only regular patterns; anything else returns no forms (the jamo n-grams cover the rest).
    """
    if len(word) < 2 or not is_syllable(word[-1]):
        return []
    stem, last = word[:-1], word[-1]
    if last in ("한", "하다", "함") or word.endswith("하다"):
        base = word[:-2] if word.endswith("하다") else stem
        return [base + "해", base + "하다", base + "해요", base + "했어"]
    lead, vowel, tail = decompose(last)
    if last == "운" and stem:  # 무서운 -> 무서워, 귀여운 -> 귀여워
        return [stem + "워", stem + "워요", stem + "웠어"]
    if last in ("은", "는") and stem:  # 좋은 -> 좋아, 웃는 -> 웃어
        ending = "아" if _bright(stem[-1]) else "어"
        return [stem + ending, stem + ending + "요", stem + "다"]
    if VOWELS[vowel] == "ㅡ" and TAILS[tail] == "ㄴ":  # 슬픈 -> 슬퍼, 아픈 -> 아파, 바쁜 -> 바빠
        new_vowel = VOWELS.index("ㅏ" if stem and _bright(stem[-1]) else "ㅓ")
        conj = stem + compose(lead, new_vowel)
        return [conj, conj + "요", stem + compose(lead, vowel, 0) + "다"]
    if LEADS[lead] == "ㄷ" and VOWELS[vowel] == "ㅏ" and tail == 0 and stem:  # 웃다 -> 웃어
        ending = "아" if _bright(stem[-1]) else "어"
        return [stem + ending, stem + ending + "요"]
    return []


def chatify(text: str, rng: random.Random, template_prob: float = 0.6) -> str:
    """One chat-like variant of a keyword: maybe conjugated, maybe inside a phrase, maybe noisy."""
    korean = is_korean(text)
    if korean and rng.random() < 0.3:
        words = text.split()
        forms = conjugate(words[-1])
        if forms:
            text = " ".join(words[:-1] + [rng.choice(forms)])
    if rng.random() < template_prob:
        text = rng.choice(KO_TEMPLATES if korean else EN_TEMPLATES).format(text)
    if rng.random() < 0.1:
        text = text.upper() if not korean else text + rng.choice(("~", "!", "?", "ㅎㅎ", "ㅜ"))
    return text
