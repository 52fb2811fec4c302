"""Generator v3, arch "composer": the CVAE decoder conditioned on a thing *and* what is said about it.

    condition = g + m + mix([g, m])      g: the thing's group embedding (as in v1)
                                         m: the sum of the modifier embeddings (colour, face, accessory)
    sampling:  text -> (base text, modifiers) (model.modifiers) -> p(group | base text) -> group
               z ~ N(0, tau^2) -> Decoder(z, condition) -> image

With no modifier the condition is exactly g, so everything built on v1's group table (fine-tuning, server
models, the text prior) works unchanged, and "our mascot + 왕관" is the new group plus the crown. The
decoder learns the modifiers from the data kitchen's composites (model.kitchen); pairs held out there were
never drawn in training, which is what the evaluation's both-concepts number asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn

from model.modifiers import KINDS
from model.modifiers import SIZES as MODIFIER_SIZES
from model.networks import DECODE_CHUNK, Z_TEMPERATURE, CVAEConfig, EmojiCVAE
from model.networks import SIZES as CVAE_SIZES
from model.plan import Plan


@dataclass(frozen=True)
class ComposerConfig(CVAEConfig):
    """v1's fields plus the modifier vocabulary sizes (0 = none in each) and the mixer's width."""

    arch: ClassVar[str] = "composer"
    colours: int = MODIFIER_SIZES["colour"]
    faces: int = MODIFIER_SIZES["expression"]
    accessories: int = MODIFIER_SIZES["accessory"]
    mix_dim: int = 256


SIZES = CVAE_SIZES  # the same presets: a composer starts from a v1 checkpoint of its size


class EmojiComposer(EmojiCVAE):
    """EmojiCVAE whose decoder condition also carries modifier ids (B, 3): colour, face, accessory."""

    def __init__(self, cfg: ComposerConfig):
        super().__init__(cfg)
        d = cfg.group_dim
        self.modifiers = nn.ModuleList(
            nn.Embedding(n, d, padding_idx=0) for n in (cfg.colours, cfg.faces, cfg.accessories)
        )
        self.mix = nn.Sequential(nn.Linear(2 * d, cfg.mix_dim), nn.SiLU(), nn.Linear(cfg.mix_dim, d))
        nn.init.zeros_(self.mix[-1].weight)  # a fresh composer draws exactly what its v1 start did
        nn.init.zeros_(self.mix[-1].bias)

    def condition(self, group: torch.Tensor, mods: torch.Tensor | None = None) -> torch.Tensor:
        """(B, group_dim) decoder condition for group ids (B,) and modifier ids (B, 3) (None: none)."""
        g = self.groups(group)
        if mods is None:
            return g
        m = sum(table(mods[:, k]) for k, table in enumerate(self.modifiers))
        has = (mods > 0).any(1, keepdim=True).to(g.dtype)
        return g + has * (m + self.mix(torch.cat([g, m], dim=1)))

    def reconstruct(self, image: torch.Tensor, group: torch.Tensor, mods: torch.Tensor | None = None):
        """Training pass: (logits, mean, logvar) for images of these groups wearing these modifiers."""
        c = self.condition(group, mods)
        mean, logvar = self.encoder(image, c)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        return self.decoder.logits(z, c), mean, logvar


@torch.no_grad()
def sample(
    model: EmojiComposer, plans: Sequence[Plan], text_vector: Callable[[str], torch.Tensor]
) -> np.ndarray:
    """(N, 4, 72, 72) premultiplied pixels; as v1's sampler (fixed decode chunks, per-plan RNG), with each
    plan's modifiers in the condition."""
    device = model.groups.weight.device
    z = torch.stack([torch.randn(model.cfg.z_dim, generator=p.rng) for p in plans]) * Z_TEMPERATURE
    groups = torch.tensor([p.group for p in plans])
    mods = torch.tensor([p.modifiers for p in plans], dtype=torch.long).view(-1, len(KINDS))
    out = []
    for start in range(0, len(z), DECODE_CHUNK):
        zc, gc, mc = (t[start : start + DECODE_CHUNK] for t in (z, groups, mods))
        pad = DECODE_CHUNK - len(zc)
        zc = torch.cat([zc, zc.new_zeros(pad, zc.shape[1])]).to(device)
        gc = torch.cat([gc, gc.new_zeros(pad)]).to(device)
        mc = torch.cat([mc, mc.new_zeros(pad, mc.shape[1])]).to(device)
        out.append(model.decode(zc, model.condition(gc, mc)).float().cpu().numpy()[: DECODE_CHUNK - pad])
    return np.concatenate(out)


# the arch registry's names for this module (model.archs); COMPOSES: the Generator hands it modifiers
COMPOSES = True
Config = ComposerConfig
Network = EmojiComposer
