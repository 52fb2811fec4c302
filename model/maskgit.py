"""Generator v2, the DALL-E direction sized for two CPU cores: image tokens + a masked transformer.

    training:  image --TokenEncoder--> 9x9 grid of FSQ codes --TokenDecoder--> image       (phase 2)
               [text vector, group embedding, masked codes] --MaskTransformer--> codes      (phase 3)
    sampling:  text -> p(group | text) -> a group g          (the same text prior as the CVAE)
               a bank emoji of g with a share of its codes masked (or all 81 masked)
               -> a few parallel MaskGIT steps with classifier-free guidance -> decode

Finite scalar quantisation (FSQ) gives the discrete codes without a learnt codebook, so no code collapses.
The transformer sees the prompt's own text vector next to the group embedding: the group decides what is
drawn, the text and the sampled codes decide which variant, colour and detail; so two seeds of one prompt
give different emoji.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import SHARED_SIZES, ModelConfig
from model.networks import ResBlock, to_premultiplied, upsampling_path
from model.plan import Plan
from model.text import TextEncoder

GRID = 9  # codes per side: one code per 8x8 pixels
# sampling: parallel decoding rounds, classifier-free guidance, code temperature, samples per call
CODE_STEPS = 8
GUIDANCE = 2.0
CODE_TEMPERATURE = 1.0
CODE_CHUNK = 4
REMASK = 0.25  # share of a bank emoji's codes drawn again (1.0: draw every code from scratch)


@dataclass(frozen=True)
class MaskGITConfig(ModelConfig):
    """Generator v2's own fields: FSQ levels per code channel (vocabulary = their product), the transformer.

    The code bank is data, not config: its size is read from the weights when a checkpoint loads."""

    arch: ClassVar[str] = "maskgit"
    fsq_levels: tuple[int, ...] = (8, 5, 5, 5)
    tf_dim: int = 192
    tf_layers: int = 4
    tf_heads: int = 4


SIZES = {  # presets for `emoji-train base --size`
    "tiny": dict(SHARED_SIZES["tiny"], tf_dim=32, tf_layers=1),
    "small": dict(SHARED_SIZES["small"]),
    "base": dict(SHARED_SIZES["base"]),
}


class FSQ(nn.Module):
    """Finite scalar quantisation (Mentzer et al. 2023): round each channel to a few levels.

    (B, D, H, W) floats -> (quantised values in [-1, 1], integer codes (B, H, W)).
    """

    def __init__(self, levels: tuple[int, ...]):
        super().__init__()
        lv = torch.tensor(levels, dtype=torch.float32)
        self.register_buffer("levels", lv, persistent=False)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]]), 0)
        self.register_buffer("basis", basis, persistent=False)
        self.size = int(math.prod(levels))

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        lv = self.levels.view(1, -1, 1, 1)
        half = (lv - 1) * (1 - 1e-3) / 2
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bounded = self.bound(z)
        rounded = bounded + (bounded.round() - bounded).detach()  # straight-through
        width = (self.levels // 2).view(1, -1, 1, 1)
        codes = ((rounded.detach() + width).long() * self.basis.view(1, -1, 1, 1)).sum(1)
        return rounded / width, codes

    def values(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, H, W) integer codes -> (B, D, H, W) quantised values in [-1, 1]."""
        digits = (codes.unsqueeze(1) // self.basis.view(1, -1, 1, 1)) % self.levels.long().view(1, -1, 1, 1)
        width = (self.levels // 2).view(1, -1, 1, 1)
        return (digits.float() - width) / width


class TokenEncoder(nn.Module):
    """(B, 4, 72, 72) premultiplied RGBA -> (B, D, 9, 9) pre-quantisation values."""

    def __init__(self, cfg: MaskGITConfig):
        super().__init__()
        w = cfg.width
        self.net = nn.Sequential(
            nn.PixelUnshuffle(2),
            nn.Conv2d(16, w, 3, padding=1),
            ResBlock(w),  # 36x36
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),
            ResBlock(2 * w),  # 18x18
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1),
            ResBlock(4 * w),
            ResBlock(4 * w),  # 9x9
            nn.GroupNorm(8, 4 * w),
            nn.SiLU(),
            nn.Conv2d(4 * w, len(cfg.fsq_levels), 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class TokenDecoder(nn.Module):
    """(B, D, 9, 9) quantised values -> (B, 4, 72, 72) logits (the CVAE decoder's upsampling path)."""

    def __init__(self, cfg: MaskGITConfig):
        super().__init__()
        w = cfg.width
        self.net = nn.Sequential(
            nn.Conv2d(len(cfg.fsq_levels), 4 * w, 3, padding=1), *upsampling_path(w, blocks_at_36=2)
        )

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.net(values)


class MaskTransformer(nn.Module):
    """Bidirectional transformer over [text, group, 81 codes]; predicts the masked codes."""

    def __init__(self, cfg: MaskGITConfig, vocab: int):
        super().__init__()
        d = cfg.tf_dim
        self.mask_id = vocab
        self.codes = nn.Embedding(vocab + 1, d)
        self.pos = nn.Parameter(torch.randn(GRID * GRID + 2, d) * 0.02)
        self.text_proj = nn.Linear(cfg.text_embed_dim, d)
        self.null_text = nn.Parameter(torch.zeros(d))
        self.null_group = nn.Parameter(torch.zeros(d))
        layer = nn.TransformerEncoderLayer(
            d, cfg.tf_heads, 4 * d, dropout=0.1, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, cfg.tf_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def condition(
        self, text: torch.Tensor | None, group: torch.Tensor | None, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, d) text token and (B, d) group token; None means "unconditional" (the CFG branch)."""
        t = self.text_proj(text) if text is not None else self.null_text.expand(batch, -1)
        g = group if group is not None else self.null_group.expand(batch, -1)
        return t, g

    def forward(self, codes: torch.Tensor, text_tok: torch.Tensor, group_tok: torch.Tensor) -> torch.Tensor:
        """codes (B, 81) with mask_id where unknown -> (B, 81, vocab) logits."""
        x = torch.cat([text_tok.unsqueeze(1), group_tok.unsqueeze(1), self.codes(codes)], dim=1)
        x = self.blocks(x + self.pos)
        return self.head(self.norm(x[:, 2:]))


class EmojiMaskGIT(nn.Module):
    """Text encoder (prior over groups), group table, FSQ image tokeniser and the masked transformer."""

    def __init__(self, cfg: MaskGITConfig):
        super().__init__()
        self.cfg = cfg
        self.text = TextEncoder(cfg.text_buckets, cfg.text_dim, cfg.text_embed_dim, cfg.num_groups)
        self.fsq = FSQ(tuple(cfg.fsq_levels))
        self.groups = nn.Embedding(cfg.num_groups, cfg.tf_dim)
        self.encoder = TokenEncoder(cfg)
        self.decoder = TokenDecoder(cfg)
        self.transformer = MaskTransformer(cfg, self.fsq.size)
        # the codes of every training emoji and its group: sampling can start from one and redraw a share
        self.register_buffer("bank_codes", torch.zeros(0, GRID * GRID, dtype=torch.int16))
        self.register_buffer("bank_groups", torch.zeros(0, dtype=torch.long))
        self._members: list[list[int]] | None = None

    @property
    def vocab(self) -> int:
        return self.fsq.size

    @property
    def bank_size(self) -> int:
        return len(self.bank_codes)

    def set_bank(self, codes: torch.Tensor, groups: torch.Tensor) -> None:
        """Replace the code bank."""
        self.bank_codes = codes.to(torch.int16).to(self.bank_codes.device)
        self.bank_groups = groups.long().to(self.bank_groups.device)
        self._members = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # the bank's size is the saved one: make room before the strict, shape-checked copy
        for name in ("bank_codes", "bank_groups"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                mine = getattr(self, name)
                setattr(self, name, torch.zeros(saved.shape, dtype=mine.dtype, device=mine.device))
        self._members = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def bank_members(self) -> list[list[int]]:
        """Bank rows of every group (computed once per bank)."""
        if self._members is None:
            members: list[list[int]] = [[] for _ in range(self.cfg.num_groups)]
            for row, group in enumerate(self.bank_groups.tolist()):
                members[group].append(row)
            self._members = members
        return self._members

    def tokenize(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 4, 72, 72) -> (B, 81) codes."""
        return self.fsq(self.encoder(image))[1].flatten(1)

    def reconstruct(self, image: torch.Tensor) -> torch.Tensor:
        """Training pass of the tokeniser: logits of the image rebuilt from its own codes."""
        values, _ = self.fsq(self.encoder(image))
        return self.decoder(values)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, 81) codes -> (B, 4, 72, 72) premultiplied RGBA in [0, 1]."""
        values = self.fsq.values(codes.view(-1, GRID, GRID))
        return to_premultiplied(self.decoder(values))


@torch.no_grad()
def seed_codes(
    model: EmojiMaskGIT,
    groups: list[int],
    rngs: list[torch.Generator],
    remask: float,
    members: list[list[int]],
) -> torch.Tensor | None:
    """Starting grids for `sample_codes`: for each sample a bank emoji of its group (picked by the sample's
    RNG) with a `remask` share of its codes masked again; groups without bank rows start fully masked.
    None when there is nothing to start from (remask >= 1 or an empty bank)."""
    if remask >= 1 or model.bank_size == 0:
        return None
    n = GRID * GRID
    rows = []
    for group, rng in zip(groups, rngs, strict=True):
        mine = members[group] if group < len(members) else []
        if not mine:
            rows.append(torch.full((n,), model.transformer.mask_id, dtype=torch.long))
            continue
        pick = mine[int(torch.randint(len(mine), (1,), generator=rng))]
        codes = model.bank_codes[pick].long().cpu()
        order = torch.rand(n, generator=rng).argsort()
        codes[order[: max(1, round(remask * n))]] = model.transformer.mask_id
        rows.append(codes)
    return torch.stack(rows).to(model.bank_codes.device)


def mask_schedule(fraction: torch.Tensor | float) -> torch.Tensor | float:
    """MaskGIT's cosine schedule: share of codes still masked after `fraction` of the steps."""
    if isinstance(fraction, torch.Tensor):
        return torch.cos(fraction * math.pi / 2)
    return math.cos(fraction * math.pi / 2)


def masked_code_loss(
    model: EmojiMaskGIT,
    codes: torch.Tensor,
    text: torch.Tensor,
    groups: torch.Tensor,
    gen: torch.Generator | None = None,
    drop: float = 0.1,
) -> torch.Tensor:
    """Cross-entropy on a random cosine-scheduled share of masked codes; the condition parts are
    dropped independently (`drop` each) so the same network also gives the unconditional branch."""
    b, n = codes.shape
    dev = codes.device
    ratio = mask_schedule(torch.rand(b, 1, generator=gen).to(dev))
    scores = torch.rand(b, n, generator=gen).to(dev)
    masked = scores < ratio  # about ratio * n masked
    masked[torch.arange(b, device=dev), scores.argmin(1)] = True  # at least one per row
    tf = model.transformer
    text_tok, group_tok = tf.condition(text, model.groups(groups), b)
    keep_text = (torch.rand(b, 1, generator=gen).to(dev) >= drop).float()
    keep_group = (torch.rand(b, 1, generator=gen).to(dev) >= drop).float()
    text_tok = keep_text * text_tok + (1 - keep_text) * tf.null_text
    group_tok = keep_group * group_tok + (1 - keep_group) * tf.null_group
    logits = tf(codes.masked_fill(masked, tf.mask_id), text_tok, group_tok)
    return F.cross_entropy(logits[masked], codes[masked], label_smoothing=0.05)


@torch.no_grad()
def sample_codes(
    model: EmojiMaskGIT,
    condition: tuple[torch.Tensor, torch.Tensor],
    rngs: list[torch.Generator],
    steps: int = CODE_STEPS,
    guidance: float = GUIDANCE,
    temperature: float = CODE_TEMPERATURE,
    init: torch.Tensor | None = None,
) -> torch.Tensor:
    """MaskGIT decoding for B samples: `steps` rounds, each keeping the most confident new codes.

    condition: (text tokens (B, d), group tokens (B, d)) from `MaskTransformer.condition`.
    rngs: one generator per sample, so a sample never depends on its batch mates.
    init: (B, 81) codes to start from, mask_id where the model should draw (inpainting).
    """
    tf = model.transformer
    b, n = len(rngs), GRID * GRID
    dev = condition[0].device
    codes = torch.full((b, n), tf.mask_id, dtype=torch.long, device=dev) if init is None else init.clone()
    null_t, null_g = tf.condition(None, None, b)
    texts, groups = torch.cat([condition[0], null_t]), torch.cat([condition[1], null_g])
    start_masked = (codes == tf.mask_id).sum(1, keepdim=True)  # (B, 1): rows may differ
    for step in range(steps):
        masked = codes == tf.mask_id
        if not masked.any():
            break
        cond, uncond = tf(codes.repeat(2, 1), texts, groups).float().log_softmax(-1).view(2, b, n, -1)
        guided = uncond + (1 + guidance) * (cond - uncond)
        # one uniform draw per code for the code itself, one for the keep order: from each sample's own RNG
        uniform = torch.stack([torch.rand(2, n, generator=g) for g in rngs]).to(dev)  # (B, 2, n)
        cdf = (guided / max(temperature, 1e-4)).softmax(-1).cumsum(-1)
        picked = torch.searchsorted(cdf, uniform[:, 0].unsqueeze(-1) * cdf[..., -1:]).squeeze(-1)
        picked = picked.clamp_max(cdf.shape[-1] - 1)  # (B, n)
        conf = guided.log_softmax(-1).gather(-1, picked.unsqueeze(-1)).squeeze(-1)
        # randomness in which codes are kept, fading over the steps (MaskGIT's "choice temperature")
        gumbel = -torch.log(-torch.log(uniform[:, 1] + 1e-9) + 1e-9)
        conf = conf + 2.0 * (1 - (step + 1) / steps) * gumbel
        conf = conf.masked_fill(~masked, float("inf"))
        # per row: how many codes stay masked after this step (the cosine schedule, at least one fewer)
        still = (start_masked.float() * mask_schedule((step + 1) / steps)).floor().long()
        still = torch.minimum(still, masked.sum(1, keepdim=True) - 1).clamp_min(0)
        new = torch.where(masked, picked, codes)
        rank = conf.argsort(dim=1).argsort(dim=1)  # 0 = least confident
        codes = torch.where(rank < still, tf.mask_id, new)
    return codes


@torch.no_grad()
def sample(
    model: EmojiMaskGIT, plans: Sequence[Plan], text_vector: Callable[[str], torch.Tensor]
) -> np.ndarray:
    """(N, 4, 72, 72) premultiplied pixels: MaskGIT decoding of the plans from a bank emoji of each group,
    in fixed chunks (the last one padded) so an image never depends on its batch mates."""
    device = model.groups.weight.device
    vectors = {text: text_vector(text) for text in sorted({p.text for p in plans})}
    members = model.bank_members()
    out = []
    for start in range(0, len(plans), CODE_CHUNK):
        chunk = list(plans[start : start + CODE_CHUNK])
        pad = CODE_CHUNK - len(chunk)
        chunk += [replace(chunk[0], rng=torch.Generator().manual_seed(0))] * pad
        groups = [p.group for p in chunk]
        rngs = [p.rng for p in chunk]
        condition = model.transformer.condition(
            torch.stack([vectors[p.text] for p in chunk]),
            model.groups(torch.tensor(groups, device=device)),
            len(chunk),
        )
        init = seed_codes(model, groups, rngs, REMASK, members)
        codes = sample_codes(model, condition, rngs, init=init)
        out.append(model.decode_codes(codes).float().cpu().numpy()[: CODE_CHUNK - pad])
    return np.concatenate(out)


# the arch registry's names for this module (model.archs)
Config = MaskGITConfig
Network = EmojiMaskGIT
