"""The evaluation's recogniser: which thing, which face, which accessory does an image show?

A small CNN with three heads (group, face, accessory), trained on every real emoji (no face, no accessory
added) and on data-kitchen images of the *training* pairs only (model.kitchen): it has never seen a held-out
(thing, modifier) pair composed, so finding both concepts in a generated held-out pair is the generator's
doing. Colour needs no network: `colour_found` compares the image's dominant hue with the asked one.
Trained once per dataset (a few minutes on 2 cores) and cached next to it.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.kitchen import Kitchen, dominant_hue, hue_of
from model.modifiers import KINDS, SIZES, VOCAB, Modifier, Modifiers

log = logging.getLogger(__name__)
STEPS = 2500
BATCH = 64
BANK = 6000
COLOUR_TOLERANCE = math.radians(40)
VERSION = 2


def over_grey(images: torch.Tensor) -> torch.Tensor:
    """Premultiplied (B, 4, 72, 72) -> colour over mid grey plus alpha: what the recogniser sees."""
    return torch.cat([images[:, :3] + 0.5 * (1 - images[:, 3:]), images[:, 3:]], dim=1)


def _trunk(widths: tuple[int, ...]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for cin, cout in zip((4, *widths[:-1]), widths, strict=True):
        layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]
    return [*layers, nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(9 * widths[-1], 384), nn.SiLU()]


class Recogniser(nn.Module):
    """Two small trunks: the whole emoji at 36 px (which thing, which accessory), and at 72 px for the
    expression (eyes and mouths are a few pixels apart at 36 px)."""

    def __init__(self, num_groups: int, width: int = 32):
        super().__init__()
        w = width
        self.body = nn.Sequential(nn.AvgPool2d(2), *_trunk((w, 2 * w, 4 * w)))
        self.fine = nn.Sequential(*_trunk((w // 2, w, 2 * w, 2 * w)))
        self.group = nn.Linear(384, num_groups)
        self.face = nn.Linear(384, SIZES["expression"])
        self.accessory = nn.Linear(384, SIZES["accessory"])

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = over_grey(images)
        h = self.body(x)
        return self.group(h), self.face(self.fine(x)), self.accessory(h)


def make_bank(
    kitchen: Kitchen, rng: random.Random, size: int = BANK
) -> list[tuple[torch.Tensor, int, Modifiers]]:
    """Training-pair composites, each modifier kind equally often (a quarter with a second modifier)."""
    bank: list[tuple[torch.Tensor, int, Modifiers]] = []
    takers = {kind: [g for g in range(len(kitchen.groups)) if kind in kitchen.kinds[g]] for kind in KINDS}
    kinds = [kind for kind in KINDS if takers[kind]]
    tries = 0
    while len(bank) < size and kinds and tries < 20 * size:
        tries += 1
        kind = kinds[tries % len(kinds)]
        group = rng.choice(takers[kind])
        options = [m for m in VOCAB[kind] if kitchen.allowed(group, m)]
        if not options:
            continue
        keys = [rng.choice(options).key]
        if rng.random() < 0.25:
            keys += [m.key for m in kitchen.random_modifiers(group, rng).named() if m.kind != kind]
        mods = Modifiers.of(*keys)
        image = kitchen.images[rng.choice(kitchen.members[group])]
        bank.append((kitchen.compose(image, mods).half(), group, mods))
    return bank


def _batch(kitchen: Kitchen, bank: list[tuple[torch.Tensor, int, Modifiers]], rng: random.Random, n: int):
    images, groups, faces, accessories = [], [], [], []
    for k in range(n):
        if k % 3 == 0 or not bank:  # a third real emoji, two thirds composites
            i = rng.randrange(len(kitchen.images))
            image, group, mods = kitchen.images[i], int(kitchen.image_group[i]), Modifiers()
        else:
            image, group, mods = rng.choice(bank)
        images.append(image.float())
        groups.append(group)
        faces.append(mods.expression)
        accessories.append(mods.accessory)
    return torch.stack(images), torch.tensor(groups), torch.tensor(faces), torch.tensor(accessories)


def train_recogniser(kitchen: Kitchen, steps: int = STEPS, seed: int = 0) -> Recogniser:
    """Real emoji + training-pair composites; the held-out pairs are never made (Kitchen.random_modifiers)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    bank = make_bank(kitchen, rng)
    model = Recogniser(len(kitchen.groups))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    t0 = time.monotonic()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        x, groups, faces, accessories = _batch(kitchen, bank, rng, BATCH)
        shift = (rng.randrange(-3, 4), rng.randrange(-3, 4))  # a generated emoji is never pixel-aligned
        x = torch.roll(x, shift, dims=(2, 3))
        gl, fl, al = model(x)
        loss = F.cross_entropy(gl, groups) + 2 * F.cross_entropy(fl, faces) + F.cross_entropy(al, accessories)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 250 == 0:
            log.info(
                "recogniser: step %d/%d loss %.3f (%.0f s)", step, steps, loss.item(), time.monotonic() - t0
            )
    return model.eval()


def load_or_train(path: Path, kitchen: Kitchen, fingerprint: str) -> Recogniser:
    """The cached recogniser for this dataset (`fingerprint`), trained and saved if missing or stale."""
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("fingerprint") == fingerprint and saved.get("version") == VERSION:
            model = Recogniser(len(kitchen.groups))
            model.load_state_dict(saved["state_dict"])
            return model.eval()
    log.info("training the evaluation's recogniser (once per dataset) -> %s", path)
    model = train_recogniser(
        kitchen, steps=min(STEPS, 5 * len(kitchen.images))
    )  # a test's ten emoji: seconds
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "fingerprint": fingerprint, "version": VERSION}, path)
    return model


def colour_found(image: torch.Tensor, mod: Modifier) -> bool:
    """The image's main colour region has the asked hue (premultiplied (4, 72, 72))."""
    found = dominant_hue(image)
    if found is None:
        return False
    gap = abs((found[0] - hue_of(mod.rgb)[1] + math.pi) % (2 * math.pi) - math.pi)
    return gap < COLOUR_TOLERANCE


@torch.no_grad()
def recognise(model: Recogniser, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(top-5 groups (N, 5), face ids (N,), accessory ids (N,)) for premultiplied images."""
    gl, fl, al = model(images.float())
    return gl.topk(5, dim=1).indices.numpy(), fl.argmax(1).numpy(), al.argmax(1).numpy()
