"""Validate the chat lexicon (training) and held-out chat eval prompts against CLDR.

Checks column counts, that every emoji is a CLDR-annotated emoji (ko/en, annotations or
annotationsDerived) written in fully-qualified form, and that eval prompts share no text
with the lexicon or with any CLDR keyword/name. The blind set (chat_prompts_blind.tsv) is checked
more strictly: no prompt may equal any training text (lexicon, emojilib, CLDR ko/en names and keywords,
the chat eval prompts, their conjugated forms) after removing spaces and punctuation, collapsing repeated
letters, stripping the chat templates and trivial endings (see `loose_keys`). Prints counts; exits 1 on
any problem.

Usage: python scripts/check_lexicon.py [--cldr DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEXICON = ROOT / "model" / "resources" / "chat_lexicon.tsv"
EVAL = ROOT / "model" / "resources" / "chat_prompts_eval.tsv"
BLIND = ROOT / "model" / "resources" / "chat_prompts_blind.tsv"
TUNE = ROOT / "model" / "resources" / "chat_prompts_tune.tsv"
EMOJILIB = ROOT / "model" / "resources" / "emojilib-en-US.json"
BLIND_KINDS = ("korean_chat", "english_chat", "mixed", "description", "rare_object")
BLIND_LANGS = ("ko", "en", "mix", "rom", "emoticon")
DEFAULT_CLDR = Path("/usr/share/unicode/cldr/common")
LANGS = ("ko", "en")
VS16 = "\ufe0f"
ZWJ = "\u200d"

# Emoji whose default presentation is text (Emoji=Yes, Emoji_Presentation=No, per UCD
# emoji-data.txt); their fully-qualified form needs U+FE0F. Only the ranges that CLDR
# annotates as emoji matter; ASCII digits/#/* (keycap bases) are excluded on purpose.
_TEXT_DEFAULT_SPEC = """
00A9 00AE 203C 2049 2122 2139 2194-2199 21A9-21AA 2328 23CF 23ED-23EF 23F1-23F2 23F8-23FA
24C2 25AA-25AB 25B6 25C0 25FB-25FC 2600-2604 260E 2611 2618 261D 2620 2622-2623 2626 262A
262E-262F 2638-263A 2640 2642 265F-2660 2663 2665-2666 2668 267B 267E 2692 2694-2697 2699
269B-269C 26A0 26A7 26B0-26B1 26C8 26CF 26D1 26D3 26E9 26F0-26F1 26F4 26F7-26F9 2702
2708-2709 270C-270D 270F 2712 2714 2716 271D 2721 2733-2734 2744 2747 2763-2764 27A1
2934-2935 2B05-2B07 3030 303D 3297 3299 1F170-1F171 1F17E-1F17F 1F202 1F237 1F321
1F324-1F32C 1F336 1F37D 1F396-1F397 1F399-1F39B 1F39E-1F39F 1F3CB-1F3CE 1F3D4-1F3DF 1F3F3
1F3F5 1F3F7 1F43F 1F441 1F4FD 1F549-1F54A 1F56F-1F570 1F573-1F579 1F587 1F58A-1F58D 1F590
1F5A5 1F5A8 1F5B1-1F5B2 1F5BC 1F5C2-1F5C4 1F5D1-1F5D3 1F5DC-1F5DE 1F5E1 1F5E3 1F5E8 1F5EF
1F5F3 1F5FA 1F6CB 1F6CD-1F6CF 1F6E0-1F6E5 1F6E9 1F6F0 1F6F3
"""

# BMP characters with Emoji_Presentation=Yes (emoji without U+FE0F). Together with
# _TEXT_DEFAULT_SPEC and U+1F000 and above, this separates emoji from the plain symbols
# (arrows, math, currency) that CLDR also annotates.
_EMOJI_BMP_SPEC = """
231A-231B 23E9-23EC 23F0 23F3 25FD-25FE 2614-2615 2648-2653 267F 2693 26A1 26AA-26AB
26BD-26BE 26C4-26C5 26CE 26D4 26EA 26F2-26F3 26F5 26FA 26FD 2705 270A-270B 2728 274C 274E
2753-2755 2757 2795-2797 27B0 27BF 2B1B-2B1C 2B50 2B55
"""


def _ranges(spec: str) -> tuple[tuple[int, int], ...]:
    return tuple((int(lo, 16), int(hi or lo, 16)) for lo, _, hi in (t.partition("-") for t in spec.split()))


_TEXT_DEFAULT_RANGES = _ranges(_TEXT_DEFAULT_SPEC)
_EMOJI_BMP_RANGES = _ranges(_EMOJI_BMP_SPEC)


def _is_emoji_start(ch: str) -> bool:
    cp = ord(ch)
    return cp >= 0x1F000 or _text_default(ch) or any(lo <= cp <= hi for lo, hi in _EMOJI_BMP_RANGES)


def _text_default(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _TEXT_DEFAULT_RANGES)


def _is_emoji_char(ch: str) -> bool:
    """Rough test for characters that belong to an emoji rather than to text."""
    cp = ord(ch)
    return cp >= 0x1F000 or ch in (VS16, ZWJ) or _text_default(ch) or 0x2300 <= cp <= 0x2BFF


def load_cldr(cldr_dir: Path) -> tuple[set[str], set[str]]:
    """Return (emoji cps with VS16 removed, normalised keywords+names) for ko/en."""
    cps: set[str] = set()
    words: set[str] = set()
    for sub in ("annotations", "annotationsDerived"):
        for lang in LANGS:
            path = cldr_dir / sub / f"{lang}.xml"
            if not path.is_file():
                raise FileNotFoundError(path)
            for node in ET.parse(path).getroot().iter("annotation"):
                cp = node.get("cp", "")
                if not any(ord(c) > 0x2000 for c in cp):
                    continue  # ASCII/Latin-1 symbols are not emoji
                cps.add(cp.replace(VS16, ""))
                for word in (node.text or "").split("|"):
                    if norm(word):
                        words.add(norm(word))
    return cps, words


def norm(text: str) -> str:
    """Lowercase, NFC, drop emoji and surrounding punctuation, collapse whitespace."""
    text = unicodedata.normalize("NFC", text).lower()
    text = "".join(" " if _is_emoji_char(c) else c for c in text)
    text = " ".join(text.split())
    return text.strip(" !?.,~^;:'\"-…")


_KO_ENDINGS = (
    "습니다",
    "었어",
    "았어",
    "했어",
    "해요",
    "어요",
    "아요",
    "네요",
    "지요",
    "하다",
    "해",
    "요",
    "다",
    "어",
    "아",
    "야",
    "지",
    "네",
    "당",
    "용",
    "엉",
    "웅",
    "행",
    "함",
    "음",
    "임",
)
_EN_ENDINGS = ("ing", "ed", "es", "s", "y")


def _strip_endings(key: str) -> str:
    """Drop trivial endings (Korean conjugation and chat tails, English inflection) while 2+ chars stay."""
    while True:
        key = key.rstrip("ㅋㅎㅠㅜㄷ~!?")
        for end in _KO_ENDINGS + _EN_ENDINGS:
            if key.endswith(end) and len(key) - len(end) >= 2:
                key = key[: -len(end)]
                break
        else:
            return key


def loose(text: str) -> str:
    """norm() without spaces and punctuation, every run of one letter collapsed to one, endings stripped."""
    key = "".join(ch for ch in norm(text.replace("_", " ")) if ch.isalnum())
    if 2 * len(key) <= len("".join(text.split())):  # an emoticon (:O, <3, T_T): its punctuation is the text
        key = "".join(text.lower().split())
    key = re.sub(r"(.)\1+", r"\1", key)
    return _strip_endings(key) or key


def untemplate(text: str) -> list[str]:
    """The text itself plus whatever fills a chat template it matches ("오늘 너무 X" -> X)."""
    from model.chat import EN_TEMPLATES, KO_TEMPLATES

    out = [text]
    low = norm(text)
    for template in set(KO_TEMPLATES + EN_TEMPLATES) - {"{}"}:
        head, _, tail = template.partition("{}")
        head, tail = norm(head) if head.strip() else "", norm(tail) if tail.strip() else ""
        if low.startswith(head) and low.endswith(tail) and len(low) > len(head) + len(tail):
            out.append(low[len(head) : len(low) - len(tail)].strip())
    return out


def training_keys(texts: list[str]) -> dict[str, str]:
    """loose key -> one training text with that key, over the texts and their conjugated forms."""
    from model.chat import conjugate

    keys: dict[str, str] = {}
    for text in texts:
        words = text.split()
        forms = [text] + ([" ".join(words[:-1] + [f]) for f in conjugate(words[-1])] if words else [])
        for form in forms:
            key = loose(form)
            if key:
                keys.setdefault(key, text)
    return keys


def load_cldr_texts(cldr_dir: Path) -> list[str]:
    """Every ko/en CLDR name and keyword, as written."""
    texts = []
    for sub in ("annotations", "annotationsDerived"):
        for lang in LANGS:
            for node in ET.parse(cldr_dir / sub / f"{lang}.xml").getroot().iter("annotation"):
                texts += [w.strip() for w in (node.text or "").split("|") if w.strip()]
    return texts


def check_blind(
    cldr_dir: Path,
    cps: set[str],
    lex_texts: list[str],
    eval_texts: list[str],
    errors: list[str],
    path: Path = BLIND,
    also: dict[str, list[str]] | None = None,
):
    """The blind set (or the tuning set, written like it): well-formed, and no prompt loosely equal to any
    training text (nor to the texts in `also`, by source name); returns kind counts."""
    import json

    emojilib = [k for kws in json.loads(EMOJILIB.read_text(encoding="utf-8")).values() for k in kws]
    cldr = load_cldr_texts(cldr_dir)
    sources = {
        "lexicon": training_keys(lex_texts),
        "chat eval": training_keys(eval_texts),
        "emojilib": training_keys(emojilib),
        "CLDR": training_keys(cldr),
        **{name: training_keys(texts) for name, texts in (also or {}).items()},
    }
    by_kind: Counter[str] = Counter()
    seen: dict[str, int] = {}
    for lineno, (prompt, kind, lang, acceptable) in read_rows(path, 4, errors):
        where = f"{path.name}:{lineno}"
        if kind not in BLIND_KINDS or lang not in BLIND_LANGS:
            errors.append(f"{where}: bad kind/lang {kind!r}/{lang!r}")
        key = loose(prompt)
        if key in seen:
            errors.append(f"{where}: duplicate prompt {prompt!r} (line {seen[key]})")
        seen.setdefault(key, lineno)
        # rare_object prompts are CLDR names on purpose: they must only stay clear of the chat texts
        checked = ("lexicon", "chat eval", *(also or {})) if kind == "rare_object" else tuple(sources)
        hits = {
            (name, sources[name][k])
            for k in map(loose, untemplate(prompt))
            for name in checked
            if k in sources[name]
        }
        for name, hit in sorted(hits):
            errors.append(f"{where}: prompt {prompt!r} collides with {name} text {hit!r}")
        check_emoji_list(where, acceptable, 1, 8, cps, errors)
        by_kind[kind] += 1
    return by_kind


def check_emoji(token: str, cps: set[str]) -> str | None:
    """Return a problem description for one emoji token, or None if it is fine."""
    if not (_is_emoji_start(token[0]) or token.endswith("\u20e3")):
        return f"{token!r} (U+{ord(token[0]):04X}) is not an emoji"
    if token.replace(VS16, "") not in cps:
        return f"emoji {token!r} ({' '.join(f'U+{ord(c):04X}' for c in token)}) not in CLDR ko/en"
    for i, ch in enumerate(token):
        nxt = token[i + 1] if i + 1 < len(token) else ""
        if _text_default(ch) and nxt != VS16 and not ("\U0001f3fb" <= nxt <= "\U0001f3ff"):
            return f"emoji {token!r} not fully-qualified (needs U+FE0F after U+{ord(ch):04X})"
        if ch == VS16 and (i == 0 or not (_text_default(token[i - 1]) or token[i - 1] in "0123456789#*")):
            return f"emoji {token!r} has a superfluous U+FE0F at position {i}"
    return None


def read_rows(path: Path, ncols: int, errors: list[str]) -> list[tuple[int, list[str]]]:
    """Read non-comment, non-blank rows, checking the column count."""
    rows: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != ncols or any(c != c.strip() or not c for c in cols):
            errors.append(f"{path.name}:{lineno}: expected {ncols} non-empty trimmed columns: {line!r}")
            continue
        rows.append((lineno, cols))
    return rows


def check_emoji_list(where: str, field: str, lo: int, hi: int, cps: set[str], errors: list[str]) -> list[str]:
    tokens = field.split(" ")
    if not lo <= len(tokens) <= hi:
        errors.append(f"{where}: expected {lo}-{hi} emoji, got {len(tokens)}: {field!r}")
    if len(set(tokens)) != len(tokens):
        errors.append(f"{where}: duplicate emoji in {field!r}")
    for tok in tokens:
        problem = check_emoji(tok, cps)
        if problem:
            errors.append(f"{where}: {problem}")
    return tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cldr", type=Path, default=DEFAULT_CLDR, help="CLDR common/ directory")
    parser.add_argument("--verbose", action="store_true", help="list lexicon texts that are CLDR keywords")
    args = parser.parse_args(argv)

    cps, cldr_words = load_cldr(args.cldr)
    errors: list[str] = []

    lex_rows = read_rows(LEXICON, 2, errors)
    lex_texts: dict[str, int] = {}
    lex_emoji: Counter[str] = Counter()
    in_cldr: list[str] = []
    for lineno, (text, emojis) in lex_rows:
        where = f"{LEXICON.name}:{lineno}"
        key = norm(text)
        if not key:
            errors.append(f"{where}: empty text after normalisation: {text!r}")
        elif key in lex_texts:
            errors.append(f"{where}: duplicate text {text!r} (line {lex_texts[key]})")
        else:
            lex_texts[key] = lineno
        if key in cldr_words:
            in_cldr.append(text)
        lex_emoji.update(check_emoji_list(where, emojis, 1, 3, cps, errors))

    eval_rows = read_rows(EVAL, 4, errors)
    seen: dict[str, int] = {}
    by_kind: Counter[tuple[str, str]] = Counter()
    for lineno, (prompt, kind, lang, acceptable) in eval_rows:
        where = f"{EVAL.name}:{lineno}"
        key = norm(prompt)
        nwords = len(prompt.split())
        if kind not in ("word", "sentence") or lang not in LANGS:
            errors.append(f"{where}: bad kind/lang {kind!r}/{lang!r}")
        elif kind == "word" and nwords > 2:
            errors.append(f"{where}: 'word' prompt has {nwords} words: {prompt!r}")
        elif kind == "sentence" and nwords < 3:
            errors.append(f"{where}: 'sentence' prompt has {nwords} words: {prompt!r}")
        if not key:
            errors.append(f"{where}: empty prompt after normalisation: {prompt!r}")
        elif key in seen:
            errors.append(f"{where}: duplicate prompt {prompt!r} (line {seen[key]})")
        else:
            seen[key] = lineno
        if key in lex_texts:
            errors.append(f"{where}: prompt {prompt!r} is a lexicon text (line {lex_texts[key]})")
        if key in cldr_words:
            errors.append(f"{where}: prompt {prompt!r} is a CLDR ko/en keyword or name")
        check_emoji_list(where, acceptable, 2, 8, cps, errors)
        by_kind[(lang, kind)] += 1

    lex_list, eval_list = [t for _, (t, _e) in lex_rows], [p for _, (p, *_r) in eval_rows]
    blind_kinds = check_blind(args.cldr, cps, lex_list, eval_list, errors)
    # the tuning set must not share a prompt with the blind set either: weights tuned on it stay blind
    blind_list = [p for _, (p, *_r) in read_rows(BLIND, 4, [])]
    tune_kinds = check_blind(args.cldr, cps, lex_list, eval_list, errors, TUNE, {"blind": blind_list})

    print(f"CLDR: {len(cps)} emoji, {len(cldr_words)} keywords/names (ko+en)")
    n_ko = sum(
        1 for _, (t, _e) in lex_rows if any("\uac00" <= c <= "\ud7a3" or "\u3131" <= c <= "\u318e" for c in t)
    )
    print(
        f"lexicon: {len(lex_rows)} entries ({n_ko} Korean, {len(lex_rows) - n_ko} other), "
        f"{len(lex_emoji)} distinct emoji; {len(in_cldr)} texts are also CLDR keywords"
    )
    if args.verbose and in_cldr:
        print("  lexicon texts that are CLDR keywords: " + ", ".join(in_cldr))
    print(
        f"eval: {len(eval_rows)} prompts: "
        + ", ".join(f"{lang}/{kind}={n}" for (lang, kind), n in sorted(by_kind.items()))
    )
    print(
        f"blind: {sum(blind_kinds.values())} prompts: "
        + ", ".join(f"{k}={n}" for k, n in sorted(blind_kinds.items()))
    )
    print(
        f"tune: {sum(tune_kinds.values())} prompts: "
        + ", ".join(f"{k}={n}" for k, n in sorted(tune_kinds.items()))
    )
    for err in errors:
        print("ERROR", err, file=sys.stderr)
    if errors:
        print(f"{len(errors)} problem(s)", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
