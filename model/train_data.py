"""What the trainers read from the dataset: images as tensors, texts by group and source, held-out targets."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from model.chat import chatify
from model.data import EmojiDataset


def images_tensor(dataset: EmojiDataset) -> torch.Tensor:
    """(N, 4, 72, 72) premultiplied RGBA floats in [0, 1]."""
    x = torch.from_numpy(dataset.images).permute(0, 3, 1, 2).float() / 255.0
    return torch.cat([x[:, :3] * x[:, 3:], x[:, 3:]], dim=1)


@dataclass
class TextPairs:
    """Training texts by group and by source, for the text phase's sampling mix."""

    texts: list[str]
    groups: np.ndarray
    by_group: list[list[int]]
    by_source: dict[str, list[int]]

    @classmethod
    def from_dataset(cls, dataset: EmojiDataset, allowed: set[str]) -> TextPairs:
        keep = [i for i, t in enumerate(dataset.pair_texts) if t in allowed]
        texts = [dataset.pair_texts[i] for i in keep]
        groups = dataset.pair_groups[keep]
        by_group: list[list[int]] = [[] for _ in range(dataset.num_groups)]
        by_source: dict[str, list[int]] = {}
        for j, i in enumerate(keep):
            by_group[int(groups[j])].append(j)
            by_source.setdefault(dataset.pair_source[i].split("-")[0], []).append(j)
        return cls(texts, groups, by_group, by_source)

    def sample(self, rng: random.Random, n: int) -> tuple[list[str], list[int]]:
        """Mix: all pairs, one group at a time (people do not dominate), lexicon and emojilib upweighted."""
        nonempty = [g for g, idx in enumerate(self.by_group) if idx]
        picks = []
        for _ in range(n):
            r = rng.random()
            if r < 0.35:
                j = rng.randrange(len(self.texts))
            elif r < 0.7:
                j = rng.choice(self.by_group[rng.choice(nonempty)])
            elif r < 0.85 and self.by_source.get("lexicon"):
                j = rng.choice(self.by_source["lexicon"])
            else:
                j = rng.choice(self.by_source.get("emojilib") or range(len(self.texts)))
            picks.append(j)
        return [chatify(self.texts[j], rng) for j in picks], [int(self.groups[j]) for j in picks]


def held_out_targets(dataset: EmojiDataset, held: set[str]) -> tuple[list[str], list[set[int]]]:
    """Held-out texts with every group that carries them (a text like 'face' has many)."""
    targets: dict[str, set[int]] = {}
    for t, g in zip(dataset.pair_texts, dataset.pair_groups.tolist(), strict=True):
        if t in held:
            targets.setdefault(t, set()).add(g)
    texts = sorted(targets)
    return texts, [targets[t] for t in texts]
