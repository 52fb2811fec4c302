"""Other spellings of chat text: emoticons as words, Korean typed on an English keyboard, romanised Korean.

Rules, no tables of chat words: each function reads the *form* of the text, so it covers inputs no list has.
- `emoticon_words`: ``:)``, ``T_T``, ``^^``, ``>_<``, ``</3``, ``\\o/`` and their variants, read by their
  eyes and mouth, as the words the rest of the text side knows ("smiling face", "loudly crying face").
- `from_keyboard`: Hangul typed with the keyboard in English mode (dubeolsik layout): ``dkssud`` -> 안녕.
- `from_romanised`: Revised Romanisation (and the usual chat variants: sh, oo, ee) back to Hangul
  syllables: ``saranghae`` -> 사랑해, ``annyeong`` -> 안녕. Romanisation is phonetic, so the result is how the
  word sounds (``gamsahamnida`` -> 감사함니다); the jamo n-grams and the sentence encoder bridge the rest.
`alternatives(text)` gives the readings worth scoring besides the text itself.
"""

from __future__ import annotations

import re
from functools import lru_cache

from model.hangul import LEADS, TAILS, VOWELS, compose

# ------------------------------------------------------------------------------------------- emoticons

_WESTERN = re.compile(r"^(?P<eyes>[:;=8xX])[-'o^]?(?P<mouth>[)\]}>(\[{<DPpOo0|/\\*3$@Sc]+)$")
_WESTERN_REV = re.compile(r"^(?P<mouth>[(\[{dD])[-'o^]?(?P<eyes>[:;=])$")  # (: and D:
_EASTERN = re.compile(
    r"^[(\[]?(?P<l>[\^TtㅠㅜㅡoO0><;xX@*=+-]+?)(?P<mouth>[_.ㅁㅂoωwv-]*)(?P<r>[\^TtㅠㅜㅡoO0><;xX@*=+-]+)[)\]]?;*$"
)
_WESTERN_MOUTH = {
    ")": "smiling face",
    "]": "smiling face",
    "}": "smiling face",
    ">": "grinning face",
    "D": "grinning face with big eyes laughing",
    "(": "sad frowning face",
    "[": "sad frowning face",
    "{": "sad frowning face",
    "<": "sad frowning face",
    "P": "face with tongue",
    "p": "face with tongue",
    "O": "face with open mouth surprised",
    "o": "face with open mouth surprised",
    "0": "face with open mouth surprised",
    "|": "neutral face",
    "/": "confused face",
    "\\": "confused face",
    "S": "confused face",
    "*": "kissing face",
    "3": "kissing face",
    "$": "money-mouth face",
    "@": "angry face",
    "c": "sad frowning face",
}
_EYES = {  # Eastern emoticons: what a pair of eyes says
    "^": "smiling face with smiling eyes",
    "T": "loudly crying face",
    "t": "loudly crying face",
    "ㅠ": "loudly crying face",
    "ㅜ": "loudly crying face",
    "ㅡ": "expressionless face",
    "-": "expressionless face",
    "=": "expressionless face",
    "o": "face with open mouth surprised",
    "O": "face with open mouth surprised",
    "0": "face with open mouth surprised",
    ";": "anxious face with sweat",
    "x": "dizzy face",
    "X": "dizzy face",
    "@": "dizzy face",
    "*": "star-struck",
    "+": "star-struck",
}
_SPECIAL = {
    "<3": "red heart",
    "</3": "broken heart",
    "\\o/": "raising hands celebration",
    "o/": "waving hand",
    "\\o": "waving hand",
    "orz": "person kneeling bowing",
    "otl": "person kneeling bowing",
    "xd": "grinning squinting face laughing",
}


def _squeeze(word: str) -> str:
    return re.sub(r"(.)\1+", r"\1", word)


def emoticon_words(token: str) -> str | None:
    """The words an emoticon stands for, or None if the token is not one."""
    token = token.strip()
    low = token.lower()
    if low in _SPECIAL or re.fullmatch(r"<3+", low):
        return _SPECIAL.get(low, "red heart")
    if low.startswith("</3"):
        return "broken heart"
    if re.fullmatch(r"x+d+", low) and token != low.lower().replace(
        "x", "x"
    ):  # XD, xDDD; not "xd" typed as a word
        return _SPECIAL["xd"]
    m = _WESTERN.match(token)
    if m:
        mouth = _squeeze(m.group("mouth"))[-1]
        if m.group("eyes") == ";" and mouth in ")]D":
            return "winking face"
        if m.group("eyes") in "xX" and mouth in "D)":
            return _SPECIAL["xd"]
        if m.group("eyes") in "xX" and mouth not in "(P":
            return None  # "x0", "xo" are more often text
        return _WESTERN_MOUTH.get(mouth)
    m = _WESTERN_REV.match(token)
    if m:
        return "smiling face" if m.group("mouth") in "([{" else "anguished face"
    m = _EASTERN.match(token)
    if m and len(token) >= 2:
        left, right = _squeeze(m.group("l")), _squeeze(m.group("r"))
        if left == ">" and right == "<":
            return "persevering face squinting"
        if {left, right} == {"o", "O"} or (left, right) in (("o", "0"), ("0", "o")):
            return "flushed confused face"
        if left == right and left in _EYES:
            if not m.group("mouth") and left in "oO0-=+*xX@" and len(token) < 3:
                return None  # "oo", "--", "xx", "00" alone are not faces
            return _EYES[left]
    return None


def emoticons_as_words(text: str) -> str | None:
    """The text with every emoticon replaced by its words, or None when it has none."""
    out, changed = [], False
    for token in text.split():
        words = emoticon_words(token)
        if words is None:
            # a trailing emoticon glued to a word: 고마워요^^, 졸려T_T
            m = re.match(r"^(.*?[가-힣a-z])([\^T;:<>ㅠㅜ][\^_.\-T;)(DPpㅠㅜ]+)$", token)
            if m and emoticon_words(m.group(2)):
                out += [m.group(1), emoticon_words(m.group(2))]
                changed = True
                continue
            out.append(token)
        else:
            out.append(words)
            changed = True
    return " ".join(out) if changed else None


# ------------------------------------------------------------------------ Korean on an English keyboard

_KEYS = {  # dubeolsik: the key -> the jamo it types (shift for the doubled consonants and ㅒ ㅖ)
    "q": "ㅂ", "w": "ㅈ", "e": "ㄷ", "r": "ㄱ", "t": "ㅅ", "y": "ㅛ", "u": "ㅕ", "i": "ㅑ", "o": "ㅐ",
    "p": "ㅔ",
    "a": "ㅁ", "s": "ㄴ", "d": "ㅇ", "f": "ㄹ", "g": "ㅎ", "h": "ㅗ", "j": "ㅓ", "k": "ㅏ", "l": "ㅣ",
    "z": "ㅋ", "x": "ㅌ", "c": "ㅊ", "v": "ㅍ", "b": "ㅠ", "n": "ㅜ", "m": "ㅡ",
    "Q": "ㅃ", "W": "ㅉ", "E": "ㄸ", "R": "ㄲ", "T": "ㅆ", "O": "ㅒ", "P": "ㅖ",
}  # fmt: skip
_VOWEL_PAIRS = {
    "ㅗㅏ": "ㅘ",
    "ㅗㅐ": "ㅙ",
    "ㅗㅣ": "ㅚ",
    "ㅜㅓ": "ㅝ",
    "ㅜㅔ": "ㅞ",
    "ㅜㅣ": "ㅟ",
    "ㅡㅣ": "ㅢ",
}
_TAIL_PAIRS = {
    "ㄱㅅ": "ㄳ", "ㄴㅈ": "ㄵ", "ㄴㅎ": "ㄶ", "ㄹㄱ": "ㄺ", "ㄹㅁ": "ㄻ", "ㄹㅂ": "ㄼ", "ㄹㅅ": "ㄽ",
    "ㄹㅌ": "ㄾ", "ㄹㅍ": "ㄿ", "ㄹㅎ": "ㅀ", "ㅂㅅ": "ㅄ",
}  # fmt: skip


def _compose_jamo(jamo: list[str]) -> str | None:
    """Jamo as typed -> syllables (the IME's automaton); None if any jamo is left without a syllable."""
    out: list[str] = []
    i = 0
    while i < len(jamo):
        lead = jamo[i]
        if lead not in LEADS or i + 1 >= len(jamo) or jamo[i + 1] not in VOWELS:
            return None
        vowel, i = jamo[i + 1], i + 2
        if i < len(jamo) and vowel + jamo[i] in _VOWEL_PAIRS:
            vowel, i = _VOWEL_PAIRS[vowel + jamo[i]], i + 1
        tail = ""
        # a consonant is a tail unless a vowel follows it (then it leads the next syllable)
        if i < len(jamo) and jamo[i] in TAILS and (i + 1 >= len(jamo) or jamo[i + 1] not in VOWELS):
            tail, i = jamo[i], i + 1
            if (
                i < len(jamo)
                and tail + jamo[i] in _TAIL_PAIRS
                and (i + 1 >= len(jamo) or jamo[i + 1] not in VOWELS)
            ):
                tail, i = _TAIL_PAIRS[tail + jamo[i]], i + 1
        out.append(compose(LEADS.index(lead), VOWELS.index(vowel), TAILS.index(tail)))
    return "".join(out)


def from_keyboard(word: str) -> str | None:
    """Hangul for a word typed in English mode (dkssud -> 안녕), or None if it does not spell syllables."""
    if len(word) < 2 or not word.isascii() or not word.isalpha():
        return None
    keys = word if any(c in "QWERTOP" for c in word) and not word.isupper() else word.lower()
    jamo = [_KEYS.get(c, _KEYS.get(c.lower(), "")) for c in keys]
    return _compose_jamo(jamo) if all(jamo) else None


# ------------------------------------------------------------------------------------ romanised Korean

_R_LEADS = {  # Revised Romanisation initials (and chat spellings) -> lead jamo
    "g": "ㄱ", "k": "ㅋ", "kk": "ㄲ", "gg": "ㄲ", "n": "ㄴ", "d": "ㄷ", "t": "ㅌ", "tt": "ㄸ", "dd": "ㄸ",
    "r": "ㄹ", "l": "ㄹ", "m": "ㅁ", "b": "ㅂ", "p": "ㅍ", "pp": "ㅃ", "bb": "ㅃ", "s": "ㅅ", "sh": "ㅅ",
    "ss": "ㅆ", "j": "ㅈ", "jj": "ㅉ", "ch": "ㅊ", "h": "ㅎ", "": "ㅇ",
}  # fmt: skip
_R_VOWELS = {
    "a": "ㅏ", "ae": "ㅐ", "ya": "ㅑ", "yae": "ㅒ", "eo": "ㅓ", "e": "ㅔ", "yeo": "ㅕ", "ye": "ㅖ", "o": "ㅗ",
    "wa": "ㅘ", "wae": "ㅙ", "oe": "ㅚ", "yo": "ㅛ", "u": "ㅜ", "oo": "ㅜ", "wo": "ㅝ", "we": "ㅞ",
    "wi": "ㅟ",
    "yu": "ㅠ", "eu": "ㅡ", "ui": "ㅢ", "i": "ㅣ", "ee": "ㅣ",
}  # fmt: skip
_R_TAILS = {"": "", "k": "ㄱ", "g": "ㄱ", "kk": "ㄲ", "n": "ㄴ", "t": "ㅅ", "d": "ㄷ", "l": "ㄹ", "r": "ㄹ",
            "m": "ㅁ", "p": "ㅂ", "b": "ㅂ", "s": "ㅅ", "ss": "ㅆ", "ng": "ㅇ"}  # fmt: skip


@lru_cache(maxsize=4096)
def from_romanised(word: str) -> str | None:
    """Hangul for one romanised word (saranghae -> 사랑해), or None when it does not parse as syllables.

    Dynamic programming over syllables (initial? vowel final?): fewest syllables first, then fewest finals
    (a consonant between vowels starts the next syllable: sa-rang-hae, not sar-ang-hae).
    """
    word = word.lower()
    if len(word) < 3 or not word.isascii() or not word.isalpha():
        return None
    n = len(word)
    best: list[tuple[int, int, str] | None] = [None] * (n + 1)  # (syllables, finals, hangul) per prefix
    best[0] = (0, 0, "")
    for start in range(n):
        if best[start] is None:
            continue
        syl, fin, text = best[start]
        for lead, lead_j in _R_LEADS.items():
            if not word.startswith(lead, start):
                continue
            v0 = start + len(lead)
            for vowel, vowel_j in _R_VOWELS.items():
                if not word.startswith(vowel, v0):
                    continue
                t0 = v0 + len(vowel)
                for tail, tail_j in _R_TAILS.items():
                    if not word.startswith(tail, t0):
                        continue
                    end = t0 + len(tail)
                    cand = (syl + 1, fin + (tail != ""), text + compose(
                        LEADS.index(lead_j), VOWELS.index(vowel_j), TAILS.index(tail_j)
                    ))  # fmt: skip
                    if best[end] is None or cand[:2] < best[end][:2]:
                        best[end] = cand
    return best[n][2] if best[n] else None


# ---------------------------------------------------------------------------------------- alternatives


def _is_english(word: str) -> bool:
    try:
        import simplemma
    except ImportError:  # without simplemma: a vowel-free or vowel-only guess would be worse; assume English
        return True
    return simplemma.is_known(word.lower(), lang="en")


def english_lemmas(text: str) -> str | None:
    """An all-English text with every word lemmatised (simplemma): "passed my driving test" -> "pass my drive
    test"; None when nothing changes, the text is not all ASCII, or simplemma is not installed."""
    words = text.lower().split()
    if not words or not all(w.isascii() for w in words):
        return None
    try:
        import simplemma
    except ImportError:
        return None
    lemmas = " ".join(simplemma.lemmatize(w, lang="en") for w in words)
    return lemmas if lemmas != " ".join(words) else None


def unstretched(text: str) -> str | None:
    """Latin letters stretched for emphasis cut back to one: "coffeeee" -> "coffe", "noooo" -> "no".

    The tokenizer already squeezes long runs to 3; this reading helps words that a run of 3 still hides."""
    out = re.sub(r"([a-z])\1{2,}", r"\1", text.lower())
    return out if out != text.lower() else None


def alternatives(text: str) -> list[tuple[str, str]]:
    """(rule, rewritten text) readings besides the text itself; empty for ordinary text."""
    out = []
    for rule, rewrite in (("lemma", english_lemmas), ("stretch", unstretched)):
        alt = rewrite(text)
        if alt:
            out.append((rule, alt))
    words = emoticons_as_words(text)
    if words:
        out.append(("emoticon", words))
    tokens = text.split()
    latin = [t.strip("!?.,~") for t in tokens]
    if latin and all(t.isascii() and t.isalpha() for t in latin if t) and not all(map(_is_english, latin)):
        keyboard = [from_keyboard(t) for t in latin]
        if all(keyboard):
            out.append(("keyboard", " ".join(keyboard)))
        romanised = [from_romanised(t) if not _is_english(t) else t for t in latin]
        if all(romanised) and any(r != t for r, t in zip(romanised, latin, strict=True)):
            out.append(("romanised", " ".join(romanised)))
    elif any(t.isascii() and t.isalpha() and len(t) > 3 for t in tokens) and any(
        not t.isascii() for t in tokens
    ):
        # Korean with a romanised word in it: 오빠 saranghae
        mixed = [
            (from_romanised(t) or t) if t.isascii() and t.isalpha() and not _is_english(t) else t
            for t in tokens
        ]
        if mixed != tokens:
            out.append(("romanised", " ".join(mixed)))
    return out
