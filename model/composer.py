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

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from model import networks
from model.modifiers import SIZES as MODIFIER_SIZES
from model.networks import SIZES as CVAE_SIZES
from model.networks import CVAEConfig, EmojiCVAE


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


# the arch registry's names for this module (model.archs); COMPOSES: the Generator hands it modifiers
COMPOSES = True
Config = ComposerConfig
Network = EmojiComposer
sample = networks.sample  # v1's sampler: it decodes from `condition`, which carries the plan's modifiers
