"""The composer's trainer (`emoji-train base --arch composer`, v3) and its fine-tune task.

Starts from a v1 checkpoint (`--init-from checkpoints/base.pt`: text encoder, group table, encoder and
decoder), then trains v1's two paths on a mix of real emoji and data-kitchen composites (model.kitchen):
    VAE path    an image (real, or a thing wearing modifiers) -> encoder -> z -> decoder(z, condition)
    prior path  z ~ N(0, 1) -> decoder(z, condition) must give one of the group's images wearing the same
                modifiers (best of the group), which ties the modifiers to what the decoder draws
The kitchen's combinations are made once up front (a bank), so a step costs what a v1 step costs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from model.data import find_cldr
from model.kitchen import Kitchen, read_labels
from model.modifiers import KINDS
from model.networks import best_of_group_loss, vae_loss
from model.train import CVAEImages, lr_at
from model.train import Trainer as CVAETrainer

log = logging.getLogger("emoji-train")
BANK_MEMBERS = 4  # a combination keeps at most this many of its group's images
NEW_LR_SCALE = 5.0  # the modifier embeddings and mixer learn from scratch, next to trained v1 weights


@dataclass
class CompositeBank:
    """Kitchen combinations: item i is group[i] wearing mods[i]; its images are rows start[i]:end[i]."""

    group: torch.Tensor  # (items,)
    mods: torch.Tensor  # (items, 3)
    start: torch.Tensor  # (items,)
    count: torch.Tensor  # (items,)
    images: torch.Tensor  # (rows, 4, 72, 72) float16 premultiplied

    def __len__(self) -> int:
        return len(self.group)


def build_bank(kitchen: Kitchen, items: int, rng, log_every: int = 2000) -> CompositeBank:
    """`items` training combinations over the groups that take a modifier (held-out pairs never made)."""
    takers = [g for g in range(len(kitchen.groups)) if kitchen.kinds[g]]
    groups, mods, starts, counts, images = [], [], [], [], []
    rows, t0 = 0, time.monotonic()
    while len(groups) < items:
        group = rng.choice(takers)
        combo = kitchen.random_modifiers(group, rng)
        if not combo:
            continue
        members = kitchen.members[group]
        if len(members) > BANK_MEMBERS:
            members = rng.sample(members, BANK_MEMBERS)
        for i in members:
            images.append(kitchen.compose(kitchen.images[i], combo).half())
        groups.append(group)
        mods.append(combo.ids())
        starts.append(rows)
        counts.append(len(members))
        rows += len(members)
        if len(groups) % log_every == 0:
            log.info("kitchen: %d of %d combinations (%.0f s)", len(groups), items, time.monotonic() - t0)
    return CompositeBank(
        torch.tensor(groups),
        torch.tensor(mods),
        torch.tensor(starts),
        torch.tensor(counts),
        torch.stack(images),
    )


class Trainer(CVAETrainer):
    """v1's trainer with the kitchen's composites in every batch and the modifiers in the condition."""

    def prepare(self) -> None:
        super().prepare()
        cldr = find_cldr(self.recipe.cldr)
        self.kitchen = Kitchen(
            self.images, self.dataset.image_group, list(self.dataset.groups), read_labels(cldr)
        )
        if not any(self.kitchen.kinds):
            log.warning(
                "kitchen: no CLDR labels.txt under %s; every thing takes colours and accessories", cldr
            )
        self.bank = build_bank(self.kitchen, self.recipe.bank, self.rng)
        log.info("kitchen: %d combinations, %d images", len(self.bank), len(self.bank.images))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """v1's optimisers, the new modifier weights at NEW_LR_SCALE x the rate: the rest starts trained."""
        opts = super().make_optimizers()
        new = [p for n, p in self.model.named_parameters() if n.startswith(("modifiers.", "mix."))]
        new_ids = {id(p) for p in new}
        old = [
            p for n, p in self.model.named_parameters() if not n.startswith("text.") and id(p) not in new_ids
        ]
        opts["cvae_opt"] = torch.optim.AdamW(
            [{"params": old, "scale": 1.0}, {"params": new, "scale": NEW_LR_SCALE}],
            lr=self.recipe.lr,
            weight_decay=1e-4,
        )
        return opts

    def _real_or_bank(self, n: int) -> tuple[int, int]:
        n_bank = round(n * self.recipe.compose_share)
        return n - n_bank, n_bank

    def cvae_step(self, images: torch.Tensor, group_images: list[np.ndarray], fraction: float) -> dict:
        n_post = max(1, int(self.recipe.batch_size * self.recipe.posterior_share))
        n_prior = self.recipe.batch_size - n_post
        opt = self.opts["cvae_opt"]
        for group in opt.param_groups:
            group["lr"] = lr_at(fraction, self.recipe.lr) * group["scale"]
        beta = self.recipe.beta * min(1.0, fraction / 0.05)
        dev = self.device

        x, g, m = self.posterior_batch(images, n_post)
        logits, mean, logvar = self.model.reconstruct(x.to(dev), g.to(dev), m.to(dev))
        loss, parts = vae_loss(logits, x.to(dev), mean, logvar, beta)

        members, valid, g, m = self.prior_batch(images, group_images, n_prior)
        z = torch.randn(n_prior, self.model.cfg.z_dim, device=dev)
        prior_logits = self.model.decoder.logits(z, self.model.condition(g.to(dev), m.to(dev)))
        prior = best_of_group_loss(prior_logits, members.to(dev), valid.to(dev))
        loss = loss + self.recipe.prior_weight * prior / 1000
        parts["prior"] = prior.item() / 1000
        self.image_update(opt, loss)
        return parts

    def posterior_batch(self, images: torch.Tensor, n: int):
        """(images, groups, modifier ids) for the VAE path: real emoji and single composites."""
        n_real, n_bank = self._real_or_bank(n)
        idx = torch.tensor([self.rng.randrange(len(images)) for _ in range(n_real)], dtype=torch.long)
        items = torch.tensor([self.rng.randrange(len(self.bank)) for _ in range(n_bank)], dtype=torch.long)
        rows = self.bank.start[items] + torch.tensor(
            [self.rng.randrange(int(c)) for c in self.bank.count[items]], dtype=torch.long
        )
        x = torch.cat([images[idx], self.bank.images[rows].float()])
        g = torch.cat(
            [torch.from_numpy(self.dataset.image_group[idx.numpy()]).long(), self.bank.group[items]]
        )
        m = torch.cat([torch.zeros(n_real, len(KINDS), dtype=torch.long), self.bank.mods[items]])
        return x, g, m

    def prior_batch(self, images: torch.Tensor, group_images: list[np.ndarray], n: int, most: int = 8):
        """(members (n, most, 4, 72, 72), valid (n, most), groups, modifier ids) for the prior path."""
        n_real, n_bank = self._real_or_bank(n)
        groups = [self.rng.randrange(len(group_images)) for _ in range(n_real)]
        idx, valid = self.group_members(groups, group_images, most)
        real = images[idx]
        items = torch.tensor([self.rng.randrange(len(self.bank)) for _ in range(n_bank)], dtype=torch.long)
        offsets = torch.arange(most)
        counts = self.bank.count[items]
        rows = self.bank.start[items, None] + torch.minimum(offsets[None], counts[:, None] - 1)
        made = self.bank.images[rows].float()
        bank_valid = offsets[None] < counts[:, None]
        members = torch.cat([real, made])
        g = torch.cat([torch.tensor(groups, dtype=torch.long), self.bank.group[items]])
        m = torch.cat([torch.zeros(n_real, len(KINDS), dtype=torch.long), self.bank.mods[items]])
        return members, torch.cat([valid, bank_valid]), g, m


# the arch registry's names for this module (model.archs): fine-tuning adds groups, modifiers stay as trained
FinetuneTask = CVAEImages
