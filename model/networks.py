"""Networks: the seed's conditional VAE, made to follow text through an explicit text -> group prior.

    training:  image --Encoder--> q(z | x, g)          text --TextEncoder--> p(group | text)
               (z, group embedding g) --Decoder--> image
    sampling:  text -> p(group | text) -> sample a group g -> z ~ N(0, tau^2) -> Decoder(z, g) -> image

The decoder never sees raw text: the text -> image mapping is the text encoder's group distribution, a
separately measured classifier (the unCLIP pattern with a discrete prior). Images are premultiplied RGBA.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import SHARED_SIZES, ModelConfig
from model.plan import Plan
from model.text import TextEncoder


@dataclass(frozen=True)
class CVAEConfig(ModelConfig):
    """The CVAE's own fields: group embedding and latent sizes."""

    arch: ClassVar[str] = "cvae"
    group_dim: int = 128
    z_dim: int = 32


SIZES = {  # presets for `emoji-train base --size`
    "tiny": dict(SHARED_SIZES["tiny"], group_dim=16, z_dim=8),
    "small": dict(SHARED_SIZES["small"], group_dim=96),
    "base": dict(SHARED_SIZES["base"]),
}
Z_TEMPERATURE = 0.8  # sampling: z ~ N(0, tau^2)
DECODE_CHUNK = 8  # sampling: the decoder always sees this batch shape


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(8, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def upsampling_path(w: int, blocks_at_36: int) -> list[nn.Module]:
    """(B, 4w, 9, 9) features -> (B, 4, 72, 72) logits: residual blocks, nearest upsampling, pixel shuffle.

    Shared by the CVAE decoder and v2's token decoder (their module order is what checkpoints store).
    """
    return [
        ResBlock(4 * w),
        ResBlock(4 * w),  # 9x9
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(4 * w, 2 * w, 3, padding=1),
        ResBlock(2 * w),
        ResBlock(2 * w),  # 18x18
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(2 * w, w, 3, padding=1),
        *[ResBlock(w) for _ in range(blocks_at_36)],  # 36x36
        nn.GroupNorm(8, w),
        nn.SiLU(),
        nn.Conv2d(w, 16, 3, padding=1),
        nn.PixelShuffle(2),
    ]


class ImageEncoder(nn.Module):
    """(B, 4, 72, 72) image + group embedding -> posterior mean and log-variance of z. Training only."""

    def __init__(self, cfg: CVAEConfig):
        super().__init__()
        w = cfg.width
        self.net = nn.Sequential(
            nn.PixelUnshuffle(2),  # (B, 16, 36, 36): cheap full-resolution detail
            nn.Conv2d(16, w, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),
            ResBlock(2 * w),  # 18x18
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1),
            ResBlock(4 * w),  # 9x9
            nn.GroupNorm(8, 4 * w),
            nn.SiLU(),
            nn.Conv2d(4 * w, 16, 1),
            nn.Flatten(),  # (B, 16*9*9)
        )
        self.head = nn.Linear(16 * 81 + cfg.group_dim, 2 * cfg.z_dim)

    def forward(self, image: torch.Tensor, group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.head(torch.cat([self.net(image), group], dim=1)).chunk(2, dim=1)
        return mean, logvar.clamp(-8, 4)


class Decoder(nn.Module):
    """z + group embedding -> (B, 4, 72, 72) premultiplied RGBA in [0, 1]."""

    def __init__(self, cfg: CVAEConfig):
        super().__init__()
        w = cfg.width
        self.start = nn.Linear(cfg.z_dim + cfg.group_dim, 4 * w * 81)
        self.w = w
        self.net = nn.Sequential(*upsampling_path(w, blocks_at_36=1))

    def forward(self, z: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        return to_premultiplied(self.logits(z, group))

    def logits(self, z: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Pre-activation output (the training losses want logits for the alpha BCE)."""
        x = self.start(torch.cat([z, group], dim=1)).view(-1, 4 * self.w, 9, 9)
        return self.net(x)


def to_premultiplied(logits: torch.Tensor) -> torch.Tensor:
    """Colour and alpha from logits; colour is multiplied by alpha so it can never leak outside."""
    colour, alpha = torch.sigmoid(logits[:, :3]), torch.sigmoid(logits[:, 3:])
    return torch.cat([colour * alpha, alpha], dim=1)


class EmojiCVAE(nn.Module):
    """The whole generator: text encoder (prior over groups), group table, image encoder, decoder."""

    def __init__(self, cfg: CVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.text = TextEncoder(cfg.text_buckets, cfg.text_dim, cfg.text_embed_dim, cfg.num_groups)
        self.groups = nn.Embedding(cfg.num_groups, cfg.group_dim)
        self.encoder = ImageEncoder(cfg)
        self.decoder = Decoder(cfg)

    def condition(self, group: torch.Tensor, mods: torch.Tensor | None = None) -> torch.Tensor:
        """(B, group_dim) what the decoder is conditioned on: here the group embedding alone; v3
        (model.composer) adds modifier ids (B, 3)."""
        return self.groups(group)

    def reconstruct(self, image: torch.Tensor, group: torch.Tensor, mods: torch.Tensor | None = None):
        """Training pass: (logits, mean, logvar) for images of the given group ids (and modifiers)."""
        c = self.condition(group, mods)
        mean, logvar = self.encoder(image, c)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        return self.decoder.logits(z, c), mean, logvar

    def decode(self, z: torch.Tensor, group_vectors: torch.Tensor) -> torch.Tensor:
        return self.decoder(z, group_vectors)


def pixel_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image reconstruction loss (..., 4, 72, 72) -> (...): L1 on premultiplied colour + BCE on alpha."""
    pred = to_premultiplied(logits.flatten(0, -4)).view_as(logits)
    colour = (pred[..., :3, :, :] - target[..., :3, :, :]).abs().sum((-1, -2, -3))
    alpha = F.binary_cross_entropy_with_logits(logits[..., 3:, :, :], target[..., 3:, :, :], reduction="none")
    return colour + alpha.sum((-1, -2, -3))


def best_of_group_loss(logits: torch.Tensor, members: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Decoding a *prior* sample must give one of the group's real images: the closest one counts.

    logits (B, 4, 72, 72); members (B, M, 4, 72, 72) images of each sample's group; valid (B, M) bool.
    This is what ties the decoder to the group embedding (the text side): without it the decoder learns
    to rebuild images from the encoder's z alone and sampling from the prior gives mush.
    """
    per_member = pixel_loss(logits.unsqueeze(1).expand_as(members), members)  # (B, M)
    return per_member.masked_fill(~valid, float("inf")).amin(1).mean()


def vae_loss(
    logits: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, beta: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-image: L1 on premultiplied colour + BCE on alpha (pushes edges to be crisp) + beta * KL."""
    pred = to_premultiplied(logits)
    colour = F.l1_loss(pred[:, :3], target[:, :3], reduction="sum") / len(target)
    alpha = F.binary_cross_entropy_with_logits(logits[:, 3:], target[:, 3:], reduction="sum") / len(target)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum() / len(target)
    loss = (colour + alpha) / 1000 + beta * kl / 1000
    return loss, {"colour": colour.item() / 1000, "alpha": alpha.item() / 1000, "kl": kl.item()}


@torch.no_grad()
def sample(model: EmojiCVAE, plans: Sequence[Plan], text_vector: Callable[[str], torch.Tensor]) -> np.ndarray:
    """(N, 4, 72, 72) premultiplied pixels: z from each plan's own RNG, decoded in fixed-size chunks (the
    last one padded), so the decoder always sees the same batch shape and an image's bytes never depend on
    how many requests shared the call. The condition is the model's own (`condition`: the group, plus the
    plan's modifiers for v3); `text_vector` is unused."""
    device = model.groups.weight.device
    z = torch.stack([torch.randn(model.cfg.z_dim, generator=p.rng) for p in plans]) * Z_TEMPERATURE
    groups = torch.tensor([p.group for p in plans])
    mods = torch.tensor([p.modifiers for p in plans], dtype=torch.long).view(len(plans), -1)
    out = []
    for start in range(0, len(z), DECODE_CHUNK):
        zc, gc, mc = (t[start : start + DECODE_CHUNK] for t in (z, groups, mods))
        pad = DECODE_CHUNK - len(zc)
        zc = torch.cat([zc, zc.new_zeros(pad, zc.shape[1])]).to(device)
        gc = torch.cat([gc, gc.new_zeros(pad)]).to(device)
        mc = torch.cat([mc, mc.new_zeros(pad, mc.shape[1])]).to(device)
        out.append(model.decode(zc, model.condition(gc, mc)).float().cpu().numpy()[: DECODE_CHUNK - pad])
    return np.concatenate(out)


# the arch registry's names for this module (model.archs)
Config = CVAEConfig
Network = EmojiCVAE
