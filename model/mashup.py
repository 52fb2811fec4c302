"""Mashups: one emoji that shows two things (`고양이 + 왕관`, `🐱👑`, `crying pizza`), Emoji-Kitchen style.

Reading: `A + B` and a text of exactly two emoji are always mashups, with A as the base. A plain two-word
text is one when each word on its own clearly means something different and the pair does not read as one
phrase ("crying pizza" yes; "pizza time", "진짜 대박", "rainy day" no); the second word is the base, as
in both English and Korean noun phrases (the first word modifies it).

Drawing: each part is drawn by the model from its own text (so it has its own group, text vector and
seed stream); the modifier is set on the base as a badge with a white sticker outline. (Redrawing the seam
with v2's transformer conditioned on both parts was tried: it painted the badge over with the base.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image, ImageFilter

from model.chat import EN_TEMPLATES, KO_TEMPLATES
from model.text import Tokenizer

# words the chat templates wrap around content ("진짜", "so", "time"): never a part of a mashup
FILLERS = frozenset(
    w.strip("!?.").lower() for t in KO_TEMPLATES + EN_TEMPLATES for w in t.replace("{}", " ").split()
) - {""}
# Measured with the text encoder on the 201 held-out chat prompts and the 1,202 lexicon entries: these
# make none of their two-word phrases a mashup, while "crying pizza" and "sick robot" are. Cat words spread
# their probability over a dozen cat emoji, so "angry cat" stays one emoji: `+` always works.
PART_CONFIDENCE = 0.4  # each word alone must name one emoji group this surely ...
PHRASE_CONFIDENCE = 0.3  # ... while the two words together name none this surely

BADGE_SCALE = 0.5  # the modifier's size relative to the emoji
BASE_SCALE = 1.0  # the base keeps the whole canvas: the mashup still reads as it


@dataclass(frozen=True)
class Mashup:
    """base: the thing drawn big; modifier: the thing set on it."""

    base: str
    modifier: str


def explicit_parts(text: str, tokenizer: Tokenizer) -> Mashup | None:
    """`A + B` or exactly two emoji."""
    if "+" in text:
        left, _, right = text.partition("+")
        left, right = left.strip(), right.strip(" +")
        if not left or not right or (left + right).isdigit():
            return None  # "c++", "1+1"
        return Mashup(left, right)
    emoji = tokenizer.emoji_only(text)
    if emoji and len(emoji) == 2:
        return Mashup(emoji[0], emoji[1])
    return None


def implicit_parts(
    text: str, tokenizer: Tokenizer, probs: Callable[[list[str]], torch.Tensor]
) -> Mashup | None:
    """Two content words that each mean something else, and do not form a phrase together."""
    words = text.split()
    if len(words) != 2 or tokenizer.emoji_only(text):
        return None
    if any(w.strip("!?.~").lower() in FILLERS or not w.strip("!?.~") for w in words):
        return None
    p = probs([text, words[0], words[1]])  # (3, groups)
    best, top = p.max(1)
    if int(top[1]) == int(top[2]) or float(min(best[1], best[2])) < PART_CONFIDENCE:
        return None
    if float(best[0]) >= PHRASE_CONFIDENCE:
        return None  # the pair reads as one thing ("pizza party", "rainy day")
    return Mashup(words[1], words[0])


def find_mashup(text: str, tokenizer: Tokenizer, probs: Callable[[list[str]], torch.Tensor]) -> Mashup | None:
    return explicit_parts(text, tokenizer) or implicit_parts(text, tokenizer, probs)


def _scaled(image: Image.Image, scale: float) -> Image.Image:
    size = max(1, round(image.width * scale))
    return image.convert("RGBa").resize((size, size), Image.Resampling.LANCZOS).convert("RGBA")


def _outlined(image: Image.Image, width: int = 2) -> Image.Image:
    """The image on a white silhouette a few pixels wider: the sticker look that separates the parts."""
    alpha = image.getchannel("A").filter(ImageFilter.MaxFilter(2 * width + 1))
    out = Image.new("RGBA", image.size, (255, 255, 255, 0))
    out.putalpha(alpha)
    out.alpha_composite(image)
    return out


def compose(base: Image.Image, modifier: Image.Image) -> Image.Image:
    """The base fills the canvas; the modifier sits on it as an outlined badge at the bottom right."""
    size = base.width
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    big = _scaled(base, BASE_SCALE)
    canvas.alpha_composite(big, (0, 0))
    pad = 3
    badge = Image.new("RGBA", (round(size * BADGE_SCALE) + 2 * pad,) * 2, (0, 0, 0, 0))
    badge.alpha_composite(_scaled(modifier, BADGE_SCALE), (pad, pad))
    badge = _outlined(badge)
    corner = size - badge.width + pad
    canvas.alpha_composite(badge, (corner, corner))
    return canvas
