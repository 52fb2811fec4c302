"""Text side: a Hangul-aware tokenizer and a text encoder that maps chat text to emoji groups.

The tokenizer splits text into items (words and adjacent word pairs) and describes each item by hashed
character n-grams plus jamo n-grams, so 배고파 shares pieces with 배고픈 and ㅋㅋ with 크크. The encoder
embeds every item, lets attention pick the item that carries the meaning (so "오늘 너무 배고파" is decided
by 배고파, not by 오늘), and scores the pooled vector against one prototype per emoji group.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.hangul import is_syllable, to_jamo
from model.prompt import MAX_TEXT_CHARS

MAX_ITEMS = 24

_EMOTICON = re.compile(r"^[:;=xX8][-']?[)(DPpOo3/|\]\[*]+$|^<3+$|^[\^T][_.\-oO]*[\^T]$")


def stable_hash(token: str, buckets: int) -> int:
    """A hash that is the same in every process (Python's hash() is salted)."""
    return zlib.crc32(token.encode("utf-8")) % buckets


def _squeeze_repeats(word: str, keep: int = 3) -> str:
    """ㅋㅋㅋㅋㅋㅋ -> ㅋㅋㅋ, sooooo -> sooo: chat stretches words, the meaning stays."""
    return re.sub(rf"(.)\1{{{keep},}}", lambda m: m.group(1) * keep, word)


@dataclass
class Tokenizer:
    """Turns any string into per-item lists of hashed n-gram ids. Never raises on input.

    `emoji_names` maps an emoji to its CLDR name, so an emoji inside the text reads as words.
    """

    buckets: int
    emoji_names: dict[str, str]

    def __post_init__(self) -> None:
        self._longest_emoji = max((len(e) for e in self.emoji_names), default=1)
        self._ids_cache: dict[str, list[int]] = {}  # chat repeats itself: hash each item once

    def normalize(self, text: str) -> str:
        """NFC, lowercase, emoji -> names, no control or combining marks, at most 100 characters."""
        text = unicodedata.normalize("NFC", str(text))[: MAX_TEXT_CHARS * 4]
        text = self._replace_emoji(text)
        kept = []
        for ch in text:
            cat = unicodedata.category(ch)
            if cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
                kept.append(" ")
            elif cat in ("Mn", "Me") and not is_syllable(ch):
                continue  # zalgo and stray combining marks
            else:
                kept.append(ch)
        text = " ".join("".join(kept).lower().split())
        return text[:MAX_TEXT_CHARS].strip()

    def emoji_only(self, text: str) -> list[str] | None:
        """The emoji of a text of emoji and spaces only (["🐱", "👑"]); None if anything else is in it."""
        found, i = [], 0
        text = unicodedata.normalize("NFC", text).strip()
        while i < len(text):
            if text[i].isspace() or text[i] in "\ufe0f\u200d":
                i += 1
                continue
            for length in range(min(self._longest_emoji, len(text) - i), 0, -1):
                piece = text[i : i + length]
                if piece in self.emoji_names or piece.replace("\ufe0f", "") in self.emoji_names:
                    found.append(piece)
                    i += length
                    break
            else:
                return None
        return found or None

    def _replace_emoji(self, text: str) -> str:
        out, i = [], 0
        while i < len(text):
            for length in range(min(self._longest_emoji, len(text) - i), 0, -1):
                piece = text[i : i + length]
                name = self.emoji_names.get(piece) or self.emoji_names.get(piece.replace("\ufe0f", ""))
                if name:
                    out.append(f" {name} ")
                    i += length
                    break
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def words(self, text: str) -> list[str]:
        """Normalised words; punctuation is trimmed, emoticons like :) and <3 are kept whole."""
        words = []
        for raw in self.normalize(text).split():
            if _EMOTICON.match(raw):
                words.append(raw)
                continue
            word = "".join(ch if (ch.isalnum() or ch == "'") else " " for ch in raw)
            words.extend(_squeeze_repeats(w) for w in word.split())
        return words

    def items(self, text: str) -> list[str]:
        """Words plus adjacent pairs ("ice cream"), so a two-word name can win as one item."""
        words = self.words(text)[:MAX_ITEMS]
        pairs = [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        return (words + pairs)[:MAX_ITEMS] or ["<empty>"]

    def item_ids(self, item: str) -> list[int]:
        """Hashed ids of one item: the whole item, char 1-3-grams, jamo 2-4-grams."""
        cached = self._ids_cache.get(item)
        if cached is not None:
            return cached
        tokens = [f"w:{item}"]
        chars = f"<{item}>"
        for n in (1, 2, 3):
            tokens += [f"c{n}:{chars[i : i + n]}" for i in range(len(chars) - n + 1)]
        jamo = to_jamo(item)
        if jamo != item:
            spelled = f"<{jamo}>"
            for n in (2, 3, 4):
                tokens += [f"j{n}:{spelled[i : i + n]}" for i in range(len(spelled) - n + 1)]
        ids = [stable_hash(t, self.buckets) for t in tokens]
        if len(self._ids_cache) < 500_000:
            self._ids_cache[item] = ids
        return ids

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """A batch for TextEncoder: flat ids with per-item offsets, and each item's text index."""
        ids, offsets, item_text, item_pos = [], [], [], []
        for t, text in enumerate(texts):
            for p, item in enumerate(self.items(text)):
                offsets.append(len(ids))
                ids.extend(self.item_ids(item))
                item_text.append(t)
                item_pos.append(p)
        return {
            "ids": torch.tensor(ids, dtype=torch.long),
            "offsets": torch.tensor(offsets, dtype=torch.long),
            "item_text": torch.tensor(item_text, dtype=torch.long),
            "item_pos": torch.tensor(item_pos, dtype=torch.long),
            "num_texts": torch.tensor(len(texts)),
        }


class TextEncoder(nn.Module):
    """Items -> attention-pooled text vector -> cosine scores against emoji-group prototypes."""

    def __init__(self, buckets: int, dim: int, embed_dim: int, num_groups: int):
        super().__init__()
        self.ngrams = nn.EmbeddingBag(buckets, dim, mode="mean")
        self.item_mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.attn = nn.Linear(dim, 1)
        self.out = nn.Sequential(nn.LayerNorm(2 * dim), nn.Linear(2 * dim, embed_dim))
        self.prototypes = nn.Parameter(torch.randn(num_groups, embed_dim) * 0.05)
        self.logit_scale = nn.Parameter(torch.tensor(3.0))
        nn.init.normal_(self.ngrams.weight, std=0.1)

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, embed_dim) unit text vectors."""
        items = self.ngrams(batch["ids"], batch["offsets"])  # (I, dim)
        items = items + self.item_mlp(items)
        num_texts = int(batch["num_texts"])
        length = int(batch["item_pos"].max()) + 1
        padded = items.new_zeros(num_texts, length, items.shape[1])  # (B, L, dim)
        padded[batch["item_text"], batch["item_pos"]] = items
        mask = torch.zeros(num_texts, length, dtype=torch.bool, device=items.device)
        mask[batch["item_text"], batch["item_pos"]] = True
        scores = self.attn(padded).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, L)
        weights = scores.softmax(dim=-1).unsqueeze(-1)
        pooled = (weights * padded).sum(1)
        maxed = padded.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        return F.normalize(self.out(torch.cat([pooled, maxed], dim=-1)), dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, num_groups) logits."""
        text = self.embed(batch)
        protos = F.normalize(self.prototypes, dim=-1)
        return self.logit_scale.exp() * text @ protos.t()


def to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}
