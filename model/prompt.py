"""What a prompt and a name are, before any model sees them: the text limit, cleaning, the name key.

Pure Python, no torch, so the bot validates input with the very rules the model applies.
"""

from __future__ import annotations

import logging
import unicodedata

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 100  # the model reads this many characters of a prompt; the bot accepts no more


class EmptyTextError(ValueError):
    """The prompt has nothing to draw (empty, whitespace or control characters only)."""


def clean_text(text: str) -> str:
    """The prompt as shown back to people: no control characters, single spaces, at most 100 characters."""
    # Lone surrogates (possible in JSON, never in real text) cannot be encoded anywhere: drop them.
    text = "".join(ch for ch in str(text) if unicodedata.category(ch) != "Cs")
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    text = " ".join(text.split())
    if not text.strip("\u200b\u200c\u200d\ufeff\u2060 "):
        raise EmptyTextError("the text is empty: type a few words, e.g. 축하해 or 'pizza party'")
    if len(text) > MAX_TEXT_CHARS:
        log.warning("text longer than %d characters was truncated: %r", MAX_TEXT_CHARS, text[:40] + "…")
        text = text[:MAX_TEXT_CHARS].rstrip()
    return text


def name_key(name: str) -> str:
    """The one key a custom emoji's name is stored, listed, found, removed and fine-tuned by.

    NFC (macOS types Korean decomposed), control characters as spaces, single spaces, casefolded: the
    name typed into ``remove`` finds what ``add`` or ``import`` stored, and names that differ only so
    are one emoji group (the tokenizer cannot tell them apart).
    """
    text = unicodedata.normalize("NFC", name)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return unicodedata.normalize("NFC", " ".join(text.casefold().split()))
