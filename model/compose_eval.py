"""The evaluation of new emoji: two concepts the model never saw together, and whether samples are copies.

two-concept   held-out (thing, modifier) pairs of the data kitchen, asked for in Korean and English
              ("파란 고양이", "crying pizza", "cat with a crown"); a sample counts when the recogniser
              (model.recogniser) finds the thing (top-5 group) and the modifier (face/accessory head,
              colour by hue) — both, or each alone
novelty       per sample: copy / novel against the training images (model.novelty); per prompt: distinct
              images among 16 seeds
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.data import EmojiDataset, read_cldr_annotations
from model.kitchen import Kitchen, read_labels
from model.modifiers import VOCAB, Modifier, Modifiers
from model.novelty import NoveltyScale, TrainingImages, count_distinct
from model.quality import premultiplied
from model.recogniser import colour_found, load_or_train, recognise
from model.train_data import images_tensor

PER_KIND = 20  # held-out pairs asked for per modifier kind (each in Korean and in English)
PAIR_SEED = 0
DISTINCT_SEEDS = 16
MAX_NAME_WORDS = 2  # things people name in two words ("cat", "hot dog"), not "globe showing Europe-Africa"


@dataclass(frozen=True)
class TwoConcept:
    text: str
    group: int
    modifier: Modifier


def _phrase(mod: Modifier, thing: str, korean: bool) -> str:
    words = [w for w in mod.words if w.isascii() != korean]
    if mod.kind == "accessory":
        if korean:
            worn = next((w for w in words if w.endswith(("쓴", "단", "낀"))), words[0] + " 쓴")
            return f"{worn} {thing}"
        return f"{thing} {next((w for w in words if w.startswith('with ')), 'with a ' + words[0])}"
    return f"{words[0]} {thing}"


def two_concept_prompts(kitchen: Kitchen, dataset: EmojiDataset, cldr: Path) -> list[TwoConcept]:
    """A fixed sample of held-out pairs, PER_KIND per kind, each as a Korean and an English prompt."""
    ko, en = read_cldr_annotations(cldr, "ko"), read_cldr_annotations(cldr, "en")
    rng = random.Random(PAIR_SEED)
    by_kind: dict[str, list] = {}
    for group, mod in kitchen.held_out_pairs():
        emoji = dataset.representative(group)
        if emoji in ko and emoji in en and len(en[emoji][0].split()) <= MAX_NAME_WORDS:
            by_kind.setdefault(mod.kind, []).append((group, mod, ko[emoji][0], en[emoji][0]))
    out = []
    for kind in sorted(by_kind):
        for group, mod, name_ko, name_en in rng.sample(by_kind[kind], min(PER_KIND, len(by_kind[kind]))):
            out.append(TwoConcept(_phrase(mod, name_ko, True), group, mod))
            out.append(TwoConcept(_phrase(mod, name_en, False), group, mod))
    return out


class ComposeJudge:
    """Everything the new-emoji numbers need, built once per evaluation run (the recogniser is cached)."""

    def __init__(self, dataset: EmojiDataset, cldr: Path, cache: Path, nearest):
        self.dataset = dataset
        self.kitchen = Kitchen(
            images_tensor(dataset), dataset.image_group, list(dataset.groups), read_labels(cldr)
        )
        fingerprint = hashlib.sha1(dataset.images[:: max(1, len(dataset.images) // 64)].tobytes()).hexdigest()
        self.recogniser = load_or_train(cache, self.kitchen, f"{len(dataset.images)}:{fingerprint}")
        self.prompts = two_concept_prompts(self.kitchen, dataset, cldr)
        self.nearest = nearest  # evaluate.NearestEmoji over the same dataset
        self.scale: NoveltyScale = TrainingImages(dataset, nearest).calibrate()

    def found(self, images: np.ndarray, items: list[TwoConcept]) -> dict[str, float]:
        """Shares of samples (N, 72, 72, 4 uint8; one TwoConcept each) showing the thing, modifier, both."""
        x = torch.from_numpy(premultiplied(images)).permute(0, 3, 1, 2)
        top5, faces, accessories = recognise(self.recogniser, x)
        thing, modifier = [], []
        for k, item in enumerate(items):
            thing.append(item.group in top5[k])
            mod = item.modifier
            if mod.kind == "colour":
                modifier.append(colour_found(x[k], mod))
            else:
                index = [m.key for m in VOCAB[mod.kind]].index(mod.key) + 1
                modifier.append(int((faces if mod.kind == "expression" else accessories)[k]) == index)
        thing_a, mod_a = np.array(thing), np.array(modifier)
        return {
            "thing": float(thing_a.mean()),
            "modifier": float(mod_a.mean()),
            "both": float((thing_a & mod_a).mean()),
        }

    def ceiling(self) -> dict[str, float]:
        """The recogniser on the kitchen's own images of the held-out pairs: a perfect composer's score."""
        images, items = [], []
        for item in self.prompts[::2]:
            real = self.kitchen.images[self.kitchen.members[item.group][0]]
            made = self.kitchen.compose(real, Modifiers.of(item.modifier.key))
            a = made[3:].clamp_min(1e-3)
            rgba = torch.cat([(made[:3] / a).clamp(0, 1), made[3:]]).permute(1, 2, 0).numpy()
            images.append((rgba * 255).round().astype(np.uint8))
            items.append(item)
        return self.found(np.stack(images), items)

    def novelty(self, images: np.ndarray) -> dict[str, float]:
        """copy / novel shares of a set of samples (N, 72, 72, 4 uint8)."""
        d = self.nearest.distances(images)
        return {"copy": float((d <= self.scale.copy).mean()), "novel": float((d >= self.scale.novel).mean())}

    def distinct(self, images: np.ndarray) -> float:
        """Distinct images among one prompt's seeds (N, 72, 72, 4)."""
        return float(count_distinct(self.nearest.featurize(images), self.scale.distinct))
