"""Is a sample a new emoji, or a copy of one the model was trained on? Model-free, calibrated on real emoji.

Distances are RMS over `evaluate.image_features` (content-cropped, 32x32, colour over grey + alpha), measured
by `evaluate.NearestEmoji.distances`:
    copy       within the distance between a real emoji and itself blurred with radius 2 (a redrawn copy)
    novel      at least as far from every training image as a real emoji the model never saw is from its
               nearest training image: measured leave-one-group-out (each real emoji against the images of
               all *other* groups, so its own variants do not count), the median of those distances
    distinct   among a prompt's seeds, images farther apart than two adjacent skin-tone variants of one emoji
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from model.data import EmojiDataset

CALIBRATION_IMAGES = 400
CALIBRATION_SEED = 0
SKIN_TONES = [chr(c) for c in range(0x1F3FB, 0x1F400)]


def blurred(rgba: np.ndarray, radius: float = 2.0) -> np.ndarray:
    image = Image.fromarray(rgba, "RGBA").convert("RGBa").filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(image.convert("RGBA"))


@dataclass(frozen=True)
class NoveltyScale:
    """The three calibrated distances (RMS units)."""

    copy: float
    novel: float
    distinct: float


class TrainingImages:
    """The calibrated distances for a dataset's real emoji, on the evaluation's nearest-emoji index."""

    def __init__(self, dataset: EmojiDataset, nearest):
        self.dataset = dataset
        self.nearest = nearest  # evaluate.NearestEmoji over the same dataset
        self.features = nearest.featurize
        self.scale_ = float(np.sqrt(nearest.features.shape[1]))

    def calibrate(self) -> NoveltyScale:
        rng = np.random.default_rng(CALIBRATION_SEED)
        pick = rng.choice(len(self.dataset.images), min(CALIBRATION_IMAGES, len(self.dataset.images)), False)
        real = self.dataset.images[pick]
        blur = np.stack([blurred(im) for im in real])
        copy = float(np.mean(np.linalg.norm(self.features(real) - self.features(blur), axis=1)) / self.scale_)
        novel = float(np.median(self.nearest.distances(real, skip_groups=self.dataset.image_group[pick])))
        return NoveltyScale(copy, novel, self.skin_tone_step())

    def skin_tone_step(self) -> float:
        """Mean distance between adjacent skin-tone variants (🏻 -> 🏼 ...) of the same emoji."""
        by_emoji = {e: i for i, e in enumerate(self.dataset.emojis)}
        steps = []
        for emoji in self.dataset.emojis:
            if emoji[-1:] != SKIN_TONES[0]:
                continue
            stem = emoji[:-1]
            chain = [by_emoji.get(stem + tone) for tone in SKIN_TONES]
            if None in chain:
                continue
            f = self.features(self.dataset.images[chain])
            steps += list(np.linalg.norm(np.diff(f, axis=0), axis=1) / self.scale_)
        return float(np.mean(steps)) if steps else 0.068  # the shipped dataset's value, for tiny test sets


def count_distinct(features: np.ndarray, threshold: float) -> int:
    """Greedy: how many of these images are farther than `threshold` (RMS) from every one kept before."""
    scale = np.sqrt(features.shape[1])
    kept: list[np.ndarray] = []
    for f in features:
        if all(np.linalg.norm(f - k) / scale > threshold for k in kept):
            kept.append(f)
    return len(kept)
