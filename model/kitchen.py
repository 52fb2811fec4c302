"""The data kitchen: new training emoji made from parts of real ones, for generator v3 (model.composer).

    recolour   the main colour region turned to the asked hue (파란 고양이 / blue cat) (shading kept)
    accessory  a crown, hat, ribbon or cap from the real emoji, set on top of the thing (왕관 쓴 고양이)
    face       eyes, mouth, tears, blush, sunglasses lifted off a yellow face emoji and set on food, plants,
               objects (우는 피자 / crying pizza)

Which thing takes which modifier follows its CLDR category (labels.txt): faces go where a face belongs (not
on things that already have one), nothing goes on flags and symbols. A fixed tenth of the (thing, modifier)
pairs is held out: never composed in training, so evaluation can ask for pairs the model has never seen.
Everything works on premultiplied (4, 72, 72) float tensors, the training images' format.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.data import group_key
from model.modifiers import KINDS, VOCAB, Modifier, Modifiers

HELD_OUT_MODULUS = 10  # one (thing, modifier) pair in ten is never composed in training
ACCESSORY_BASE_SCALE = 0.8  # the thing shrinks to make room for what it wears
FACE_WIDTH = 0.62  # face features span this share of the thing's width

# CLDR categories (labels.txt "Category / subcategory") and the modifier kinds they take
_NO_MODIFIER = ("Flags", "Symbols", "Smileys & People / skin-tone")
_FACE_OK = (
    "Food & Drink / food",
    "Food & Drink / drink",
    "Animals & Nature / plant",
    "Travel & Places / sky & weather",
    "Travel & Places / transport",
    "Travel & Places / place-building",
    "Objects",
    "Activities",
)
_NO_ACCESSORY = ("Smileys & People / body", "Smileys & People / family", "Smileys & People / clothing")
_NO_COLOUR = (
    "Smileys & People / person",
    "Smileys & People / family",
    "Smileys & People / body",
    "Smileys & People / emotion",
)

LABELS = Path("properties/labels.txt")  # under CLDR's common/


def read_labels(cldr: Path) -> dict[str, str]:
    """group key -> "Category / subcategory" from CLDR's labels.txt ({} if the file is missing)."""
    path = cldr / LABELS
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or ";" not in line:
            continue
        chars, category, sub = (part.strip() for part in line.split(";")[:3])
        label = f"{category} / {sub}"
        for emoji in _expand_set(chars):
            out.setdefault(group_key(emoji), label)
    return out


def _expand_set(text: str) -> list[str]:
    """A labels.txt set "[😀-😆{👨‍⚕️}x]" as its emoji."""
    inner = text.strip()[1:-1]
    out = re.findall(r"\{([^}]*)\}", inner)
    singles = re.sub(r"\{[^}]*\}", "", inner)
    i = 0
    while i < len(singles):
        if i + 2 < len(singles) and singles[i + 1] == "-":
            out += [chr(c) for c in range(ord(singles[i]), ord(singles[i + 2]) + 1)]
            i += 3
        else:
            out.append(singles[i])
            i += 1
    return out


def kinds_for(label: str | None) -> frozenset[str]:
    """The modifier kinds a thing of this CLDR category takes (unknown, newer emoji: colour, accessory)."""
    if label is None:
        return frozenset({"colour", "accessory"})
    if label.startswith(_NO_MODIFIER):
        return frozenset()
    kinds = set()
    if label.startswith(_FACE_OK) and "dishware" not in label:
        kinds.add("expression")
    if not label.startswith(_NO_ACCESSORY):
        kinds.add("accessory")
    if not label.startswith(_NO_COLOUR):
        kinds.add("colour")
    return frozenset(kinds)


def is_held_out(key: str, modifier: str) -> bool:
    """The fixed held-out pairs: a stable hash, so training and evaluation agree without a list."""
    digest = hashlib.sha1(f"{key}|{modifier}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % HELD_OUT_MODULUS == 0


# ---------------------------------------------------------------------------------------------- colour

_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_FROM_YIQ = torch.linalg.inv(_TO_YIQ)


def _straight(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    alpha = image[3:]
    return (image[:3] / alpha.clamp_min(1e-3)).clamp(0, 1), alpha


def _yiq(rgb: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,jhw->ihw", _TO_YIQ, rgb)


def hue_of(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """(luma, hue angle, chroma) of an RGB colour (0-255) in YIQ: what `recolour` turns a region to."""
    y, i, q = _yiq(torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1) / 255).flatten().tolist()
    return y, math.atan2(q, i), math.hypot(i, q)


def dominant_hue(image: torch.Tensor) -> tuple[float, float, float, float] | None:
    """(hue angle, mean chroma, mean luma, coloured share) of the largest colour region, None if greyish."""
    rgb, alpha = _straight(image)
    y, i, q = _yiq(rgb)
    chroma = torch.sqrt(i * i + q * q)
    weight = alpha[0] * (chroma > 0.06)
    total = float(alpha.sum())
    if total < 1 or float(weight.sum()) / total < 0.12:
        return None
    hue = torch.atan2(q, i)
    bins = ((hue + math.pi) / (2 * math.pi) * 24).long().clamp(0, 23)
    hist = torch.zeros(24).index_add_(0, bins.flatten(), (weight * chroma).flatten())
    peak = int(hist.argmax())
    centre = (peak + 0.5) / 24 * 2 * math.pi - math.pi
    near = weight * (_angle_gap(hue, centre) < math.radians(35))
    s = float(near.sum())
    mean_hue = math.atan2(float((near * hue.sin()).sum()), float((near * hue.cos()).sum()))
    return mean_hue, float((near * chroma).sum()) / s, float((near * y).sum()) / s, s / total


def _angle_gap(hue: torch.Tensor, centre: float) -> torch.Tensor:
    return torch.remainder(hue - centre + math.pi, 2 * math.pi).sub(math.pi).abs()


def recolour(image: torch.Tensor, rgb: tuple[int, int, int]) -> torch.Tensor:
    """The main colour region turned to `rgb`'s hue, chroma and (partly) lightness; shading and the other
    parts kept. A greyish image comes back unchanged."""
    found = dominant_hue(image)
    if found is None:
        return image.clone()
    hue0, chroma0, luma0, _ = found
    luma_t, hue_t, chroma_t = hue_of(rgb)
    straight, alpha = _straight(image)
    y, i, q = _yiq(straight)
    hue, chroma = torch.atan2(q, i), torch.sqrt(i * i + q * q)
    gap = _angle_gap(hue, hue0)
    region = ((math.radians(60) - gap) / math.radians(25)).clamp(0, 1) * ((chroma - 0.03) / 0.05).clamp(0, 1)
    scale = min(2.5, max(0.6, chroma_t / max(chroma0, 1e-3)))
    new_hue = hue + (hue_t - hue0)
    new_c = chroma * scale
    new_y = y + 0.7 * (luma_t - luma0)
    mixed = torch.stack(
        [
            y + region * (new_y - y),
            i + region * (new_c * new_hue.cos() - i),
            q + region * (new_c * new_hue.sin() - q),
        ]
    )
    out = torch.einsum("ij,jhw->ihw", _FROM_YIQ, mixed).clamp(0, 1)
    return torch.cat([out * alpha, alpha])


# ---------------------------------------------------------------------------------------------- layers


def content_box(image: torch.Tensor, threshold: float = 0.1) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the visible pixels, bottom/right exclusive; the canvas if empty."""
    mask = image[3] > threshold
    rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
    if len(rows) == 0:
        return 0, image.shape[1], 0, image.shape[2]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop(image: torch.Tensor) -> torch.Tensor:
    top, bottom, left, right = content_box(image)
    return image[:, top:bottom, left:right]


def _resize(layer: torch.Tensor, height: int, width: int) -> torch.Tensor:
    out = F.interpolate(layer[None], size=(max(1, height), max(1, width)), mode="bilinear", antialias=True)
    return out[0].clamp(0, 1)


def paste(canvas: torch.Tensor, layer: torch.Tensor, top: int, left: int) -> torch.Tensor:
    """`layer` over `canvas` (premultiplied "over"), clipped to the canvas."""
    out = canvas.clone()
    h, w = layer.shape[1:]
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(canvas.shape[1], top + h), min(canvas.shape[2], left + w)
    if y1 <= y0 or x1 <= x0:
        return out
    piece = layer[:, y0 - top : y1 - top, x0 - left : x1 - left]
    region = out[:, y0:y1, x0:x1]
    out[:, y0:y1, x0:x1] = piece + region * (1 - piece[3:])
    return out


def face_features(face: torch.Tensor) -> torch.Tensor:
    """The non-skin parts of a yellow face emoji (eyes, mouth, tears, blush, glasses), cropped."""
    rgb, alpha = _straight(face)
    top = rgb.max(0).values
    spread = top - rgb.min(0).values
    sat = spread / top.clamp_min(1e-3)
    r, g, b = rgb
    hue = torch.atan2(math.sqrt(3) * (g - b), 2 * r - g - b).rad2deg().remainder(360)
    skin = ((hue > 22) & (hue < 62) & (sat > 0.35) & (top > 0.55)).float()
    skin = F.avg_pool2d(skin[None, None], 3, 1, 1)[0, 0].clamp(0, 1)  # soft edge
    keep = alpha[0] * (1 - skin)
    layer = torch.cat([rgb * keep, keep[None]])
    return crop(layer)


def accessory_layer(image: torch.Tensor) -> torch.Tensor:
    return crop(image)


@dataclass(frozen=True)
class Placement:
    """Where a thing sits on its canvas: its box and the middle of its top edge."""

    top: int
    bottom: int
    left: int
    right: int
    top_x: float
    centre_y: float
    centre_x: float


def placement(image: torch.Tensor) -> Placement:
    top, bottom, left, right = content_box(image)
    alpha = image[3]
    band = alpha[top : top + max(2, (bottom - top) // 8)]
    xs = torch.arange(alpha.shape[1], dtype=torch.float32)
    top_x = float((band.sum(0) * xs).sum() / band.sum().clamp_min(1e-6))
    total = alpha.sum().clamp_min(1e-6)
    ys = torch.arange(alpha.shape[0], dtype=torch.float32)
    return Placement(
        top,
        bottom,
        left,
        right,
        top_x,
        float((alpha.sum(1) * ys).sum() / total),
        float((alpha.sum(0) * xs).sum() / total),
    )


def wear(image: torch.Tensor, accessory: torch.Tensor) -> torch.Tensor:
    """The thing shrunk to the bottom of the canvas with the accessory sitting on its top edge."""
    size = image.shape[-1]
    small_size = round(size * ACCESSORY_BASE_SCALE)
    small = _resize(image, small_size, small_size)
    canvas = torch.zeros_like(image)
    offset_x, offset_y = (size - small_size) // 2, size - small_size
    canvas = paste(canvas, small, offset_y, offset_x)
    where = placement(canvas)
    width = (where.right - where.left) * 0.6
    width = max(size * 0.34, min(size * 0.56, width))
    h, w = accessory.shape[1:]
    height = width * h / w
    if height > size * 0.42:  # tall accessories (a top hat) by height
        height, width = size * 0.42, size * 0.42 * w / h
    layer = _resize(accessory, round(height), round(width))
    top = max(0, round(where.top - 0.62 * layer.shape[1]))
    return paste(canvas, layer, top, round(where.top_x - layer.shape[2] / 2))


def put_face(image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Face features centred on the thing, sized to it."""
    where = placement(image)
    width = (where.right - where.left) * FACE_WIDTH
    h, w = features.shape[1:]
    height = width * h / w
    limit = (where.bottom - where.top) * 0.7
    if height > limit:
        height, width = limit, limit * w / h
    layer = _resize(features, round(height), round(width))
    top = round(where.centre_y + 0.04 * (where.bottom - where.top) - layer.shape[1] / 2)
    return paste(image, layer, top, round(where.centre_x - layer.shape[2] / 2))


# ---------------------------------------------------------------------------------------------- kitchen


class Kitchen:
    """Makes composites of a dataset's images; knows which thing takes which modifier and what is held out.

    images: (N, 4, 72, 72) premultiplied float; image_group (N,); groups: group keys; labels: CLDR categories.
    """

    def __init__(
        self, images: torch.Tensor, image_group: np.ndarray, groups: list[str], labels: dict[str, str]
    ):
        self.images = images
        self.image_group = image_group
        self.groups = groups
        self.index = {key: i for i, key in enumerate(groups)}
        self.kinds = [kinds_for(labels.get(key)) for key in groups]
        self.members: list[list[int]] = [[] for _ in groups]
        for i, g in enumerate(image_group.tolist()):
            self.members[g].append(i)
        self._colourable: dict[int, bool] = {}

    @cached_property
    def layers(self) -> dict[str, torch.Tensor]:
        """Each face and accessory modifier's layer, cut from its real emoji in the dataset."""
        out = {}
        for mod in VOCAB["expression"] + VOCAB["accessory"]:
            group = self.index.get(group_key(mod.emoji))
            if group is None:
                continue
            image = self.images[self.members[group][0]]
            out[mod.key] = face_features(image) if mod.kind == "expression" else accessory_layer(image)
        return out

    def colourable(self, group: int) -> bool:
        if group not in self._colourable:
            self._colourable[group] = dominant_hue(self.images[self.members[group][0]]) is not None
        return self._colourable[group]

    def takes(self, group: int, mod: Modifier) -> bool:
        """Whether this thing can wear this modifier at all (category, colour, its layer exists)."""
        if mod.kind not in self.kinds[group]:
            return False
        if mod.kind == "colour":
            return self.colourable(group)
        if group_key(mod.emoji) == self.groups[group]:
            return False  # no crown on the crown
        return mod.key in self.layers

    def allowed(self, group: int, mod: Modifier, held_out: bool = False) -> bool:
        """Takes it, and the pair is in the requested split (training: not held out)."""
        return self.takes(group, mod) and is_held_out(self.groups[group], mod.key) == held_out

    def compose(self, image: torch.Tensor, mods: Modifiers) -> torch.Tensor:
        """Colour first (it is the thing's), then the face on it, then the accessory on top."""
        for mod in sorted(mods.named(), key=lambda m: KINDS.index(m.kind)):
            if mod.kind == "colour":
                image = recolour(image, mod.rgb)
            elif mod.kind == "expression":
                image = put_face(image, self.layers[mod.key])
            else:
                image = wear(image, self.layers[mod.key])
        return image

    def random_modifiers(self, group: int, rng: random.Random, two: float = 0.25) -> Modifiers:
        """A training combination for this thing (none if it takes nothing): one modifier, sometimes two."""
        kinds = [k for k in KINDS if k in self.kinds[group]]
        rng.shuffle(kinds)
        ids = dict.fromkeys(KINDS, 0)
        wanted = 2 if rng.random() < two else 1
        for kind in kinds:
            options = [i for i, m in enumerate(VOCAB[kind], 1) if self.allowed(group, m)]
            if options:
                ids[kind] = rng.choice(options)
                wanted -= 1
            if wanted == 0:
                break
        return Modifiers(**ids)

    def held_out_pairs(self, groups: list[int] | None = None) -> list[tuple[int, Modifier]]:
        """Every (thing, modifier) pair held out from training that the kitchen could make."""
        groups = range(len(self.groups)) if groups is None else groups
        mods = [m for kind in KINDS for m in VOCAB[kind]]
        return [(g, m) for g in groups for m in mods if self.allowed(g, m, held_out=True)]
