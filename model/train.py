"""The CVAE's trainer (`emoji-train base`, arch "cvae") and its fine-tune task; the arch registry's
trainer module for "cvae" (model.archs).

Training has two phases: (1) the text encoder learns text -> emoji group on CLDR keywords, emojilib and the
chat lexicon, dressed up as chat; (2) the CVAE learns to draw every group. Both phases share one time budget;
a resumable state is written every few minutes next to the output. The arch-independent parts (budget,
text phase, EMA, saves, resume) are the base class the other archs' trainers extend.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.archs import get_arch
from model.augment import augment
from model.checkpoint import Meta, build_model, config_from, read_checkpoint, save_checkpoint
from model.data import emoji_names, find_cldr, load_or_build, split_texts
from model.device import DeviceUnavailable, resolve_device
from model.evaluate import text_accuracy
from model.networks import best_of_group_loss, pixel_loss, vae_loss
from model.progress import Progress
from model.recipe import TrainConfig
from model.text import Tokenizer, to_device
from model.train_data import TextPairs, held_out_targets, images_tensor

log = logging.getLogger("emoji-train")


def pick_device(name: str) -> torch.device:
    """The run's device; a missing GPU ends the run with emoji-train's one-line error."""
    try:
        return resolve_device(name)
    except DeviceUnavailable as exc:
        raise SystemExit(f"error: --device {exc}") from None


def lr_at(fraction: float, peak: float, warmup: float = 0.03) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if fraction < warmup:
        return peak * fraction / warmup
    progress = min(1.0, (fraction - warmup) / (1 - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class Trainer:
    """Owns the model, optimisers, EMA copy and the time budget across phases and resumes (the CVAE)."""

    def __init__(self, recipe: TrainConfig):
        self.recipe = recipe
        self.device = pick_device(recipe.device)
        torch.manual_seed(recipe.seed)
        self.rng = random.Random(recipe.seed)
        cldr = find_cldr(recipe.cldr)
        self.dataset = load_or_build(Path(recipe.data), recipe.font, cldr)
        self.train_texts, self.held = split_texts(self.dataset)
        self.pairs = TextPairs.from_dataset(self.dataset, self.train_texts)
        network = get_arch(recipe.arch).network
        cfg = network.Config(num_groups=self.dataset.num_groups, **network.SIZES[recipe.size])
        self.tok = Tokenizer(cfg.text_buckets, emoji_names(cldr))
        self.model = build_model(cfg).to(self.device)
        self.text_ready = self.text_copied = False
        if recipe.text_from:
            self.copy_text_encoder(recipe.text_from)
        if recipe.init_from:
            self.init_weights(recipe.init_from)
        self.opts = self.make_optimizers()
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.step, self.elapsed, self.image_steps = 0, 0.0, 0
        self.state_path = Path(str(recipe.out) + ".train")
        if recipe.resume:
            self._resume()

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cvae_params = [p for n, p in self.model.named_parameters() if not n.startswith("text.")]
        return {
            "text_opt": torch.optim.AdamW(
                self.model.text.parameters(), lr=self.recipe.text_lr, weight_decay=0.0
            ),
            "cvae_opt": torch.optim.AdamW(cvae_params, lr=self.recipe.lr, weight_decay=1e-4),
        }

    def copy_text_encoder(self, path: str) -> None:
        """Start from another checkpoint's text encoder (same groups): the text phase is skipped."""
        payload = read_checkpoint(path)
        if Meta.from_dict(payload["meta"]).groups != list(self.dataset.groups):
            raise SystemExit(
                f"error: {path} was trained on other emoji groups; cannot reuse its text encoder"
            )
        text = {k[5:]: v.float() for k, v in payload["state_dict"].items() if k.startswith("text.")}
        try:
            self.model.text.load_state_dict(text)
        except RuntimeError as exc:
            raise SystemExit(f"error: {path}: text encoder of another size ({exc})") from exc
        self.text_ready = self.text_copied = True
        self.model.text.requires_grad_(False)
        log.info("text encoder copied from %s; skipping the text phase", path)

    def init_weights(self, path: str) -> None:
        """Start from another checkpoint (same groups) wherever a weight's name and shape match; the rest
        keeps its fresh initialisation. Its text encoder comes along, so the text phase is skipped."""
        payload = read_checkpoint(path)
        if Meta.from_dict(payload["meta"]).groups != list(self.dataset.groups):
            raise SystemExit(f"error: {path} was trained on other emoji groups; cannot start from it")
        own = self.model.state_dict()
        found = {
            k: v.float() for k, v in payload["state_dict"].items() if k in own and v.shape == own[k].shape
        }
        if not any(k.startswith("text.") for k in found):
            raise SystemExit(f"error: {path}: no weight of this model's shape to start from")
        self.model.load_state_dict(found, strict=False)
        self.text_ready = self.text_copied = True
        self.model.text.requires_grad_(False)
        log.info("started from %s: %d of %d weights", path, len(found), len(own))

    @property
    def text_share(self) -> float:
        return 0.0 if self.text_copied else self.recipe.text_share

    # -- budget ---------------------------------------------------------------------------------------
    @property
    def budget_s(self) -> float:
        return self.recipe.minutes * 60

    def fraction(self) -> float:
        by_time = self.elapsed / self.budget_s
        by_steps = self.step / self.recipe.max_steps if self.recipe.max_steps else 0.0
        return min(1.0, max(by_time, by_steps))

    # -- checkpoints ------------------------------------------------------------------------------------
    def meta(self) -> Meta:
        ds = self.dataset
        return Meta(
            groups=list(ds.groups),
            group_emoji=[ds.representative(g) for g in range(ds.num_groups)],
            emoji_names=self.tok.emoji_names,
            label=self.recipe.label,
            step=self.step,
            elapsed_s=round(self.elapsed, 1),
            recipe=self.recipe.command,
        )

    def save(self, final: bool = False) -> None:
        extra = {
            "model": self.model.state_dict(),
            **{name: opt.state_dict() for name, opt in self.opts.items()},
            "step": self.step,
            "elapsed": self.elapsed,
            "image_steps": self.image_steps,
            "text_ready": self.text_ready,
            "text_copied": self.text_copied,
        }
        save_checkpoint(self.state_path, self.ema, self.meta(), extra=extra)
        if final:
            save_checkpoint(self.recipe.out, self.ema, self.meta(), half=self.recipe.half)
            log.info("wrote %s (%.1f MB)", self.recipe.out, Path(self.recipe.out).stat().st_size / 2**20)

    def _resume(self) -> None:
        if not self.state_path.is_file():
            log.warning("--resume: no training state at %s; starting fresh", self.state_path)
            return
        payload = read_checkpoint(self.state_path)
        if config_from(payload) != self.model.cfg:
            raise SystemExit(f"error: {self.state_path} was trained with another config; drop --resume")
        extra = payload["extra"]
        self.model.load_state_dict(extra["model"])
        self.ema.load_state_dict(payload["state_dict"])
        for name, opt in self.opts.items():
            opt.load_state_dict(extra[name])
        self.step, self.elapsed = int(extra["step"]), float(extra["elapsed"])
        self.image_steps = int(extra.get("image_steps", extra.get("cvae_steps", 0)))
        self.text_ready = bool(extra.get("text_ready", self.image_steps > 0))
        self.text_copied = bool(extra.get("text_copied", False))
        if self.text_ready:
            self.model.text.requires_grad_(False)
        log.info("resumed at step %d (%.1f of %.1f min)", self.step, self.elapsed / 60, self.recipe.minutes)

    # -- phases ---------------------------------------------------------------------------------------
    def text_step(self, fraction: float) -> float:
        texts, groups = self.pairs.sample(self.rng, self.recipe.text_batch)
        opt = self.opts["text_opt"]
        for group in opt.param_groups:
            group["lr"] = lr_at(fraction, self.recipe.text_lr)
        logits = self.model.text(to_device(self.tok.encode(texts), self.device))
        loss = F.cross_entropy(logits, torch.tensor(groups, device=self.device), label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    def cvae_step(self, images: torch.Tensor, group_images: list[np.ndarray], fraction: float) -> dict:
        """One step: the VAE path on a quarter of the batch (any image, so variants are modelled), the
        prior path on the rest (one group at a time, so every emoji gets drawn, people do not dominate)."""
        n_post = max(1, int(self.recipe.batch_size * self.recipe.posterior_share))
        n_prior = self.recipe.batch_size - n_post
        opt = self.opts["cvae_opt"]
        for group in opt.param_groups:
            group["lr"] = lr_at(fraction, self.recipe.lr)
        beta = self.recipe.beta * min(1.0, fraction / 0.05)

        idx = torch.tensor([self.rng.randrange(len(images)) for _ in range(n_post)])
        x = images[idx].to(self.device, non_blocking=True)
        g = torch.from_numpy(self.dataset.image_group[idx.numpy()]).to(self.device)
        logits, mean, logvar = self.model.reconstruct(x, g)
        loss, parts = vae_loss(logits, x, mean, logvar, beta)

        if n_prior > 0:
            groups = [self.rng.randrange(len(group_images)) for _ in range(n_prior)]
            members, valid = self.group_members(groups, group_images)
            z = torch.randn(n_prior, self.model.cfg.z_dim, device=self.device)
            g = self.model.groups(torch.tensor(groups, device=self.device))
            prior_logits = self.model.decoder.logits(z, g)
            prior = best_of_group_loss(prior_logits, images[members].to(self.device), valid.to(self.device))
            loss = loss + self.recipe.prior_weight * prior / 1000
            parts["prior"] = prior.item() / 1000
        self.image_update(opt, loss)
        return parts

    def image_update(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One optimiser step of an image phase (gradients clipped), then the EMA."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        opt.step()
        self.update_ema()

    def update_ema(self) -> None:
        """EMA of the trainable weights, with a warm-up so early steps are not averaged with noise."""
        self.image_steps += 1
        decay = min(self.recipe.ema, (1 + self.image_steps) / (10 + self.image_steps))
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                if p.requires_grad:
                    e.lerp_(p, 1 - decay)

    def group_members(self, groups: list[int], group_images: list[np.ndarray], most: int = 8):
        """(B, most) image indices of each group (a random few for big groups) and a validity mask."""
        rows, valid = [], []
        for group in groups:
            members = group_images[group].tolist()
            if len(members) > most:
                members = self.rng.sample(members, most)
            valid.append([True] * len(members) + [False] * (most - len(members)))
            rows.append(members + [members[0]] * (most - len(members)))
        return torch.tensor(rows), torch.tensor(valid)

    def prepare(self) -> None:
        """Tensors the image phases need (built once per run, also after a resume)."""
        self.images = images_tensor(self.dataset)
        if self.device.type == "cuda":
            self.images = self.images.pin_memory()
        self.group_image_index = self.dataset.group_images()

    def finish_text_phase(self) -> None:
        """The text encoder is done: report it, freeze it, start the EMA from it."""
        self.ema.load_state_dict(self.model.state_dict())
        self.text_ready = True
        self.model.text.requires_grad_(False)
        top1, top5 = text_accuracy(self.model, self.tok, self.held_texts, self.held_targets, self.device)
        log.info("text encoder: held-out top-1 %.3f top-5 %.3f", top1, top5)

    def train_step(self, fraction: float) -> dict[str, float]:
        """One step of whichever phase `fraction` of the budget falls in."""
        if fraction < self.text_share:
            return {"text_loss": self.text_step(fraction / self.text_share)}
        if not self.text_ready:
            self.finish_text_phase()
        phase_fraction = (fraction - self.text_share) / (1 - self.text_share)
        return self.cvae_step(self.images, self.group_image_index, phase_fraction)

    def run(self) -> None:
        self.held_texts, self.held_targets = held_out_targets(self.dataset, self.held)
        self.prepare()
        progress = Progress(f"train {self.recipe.arch} {self.recipe.size}")
        last_save = time.monotonic()
        while self.fraction() < 1.0:
            t0 = time.monotonic()
            metrics = self.train_step(self.fraction())
            self.step += 1
            self.elapsed += time.monotonic() - t0
            eta = self.budget_s - self.elapsed
            if self.recipe.max_steps:
                eta = min(eta, self.elapsed / max(1, self.step) * (self.recipe.max_steps - self.step))
            progress.update(self.fraction(), self.step, max(0.0, eta), **metrics)
            if time.monotonic() - last_save > self.recipe.save_every * 60:
                self.save()
                last_save = time.monotonic()
        progress.close()
        if self.image_steps == 0:
            self.ema.load_state_dict(self.model.state_dict())
        top1, top5 = text_accuracy(self.ema, self.tok, self.held_texts, self.held_targets, self.device)
        log.info(
            "done: %d steps in %.1f min; text held-out top-1 %.3f top-5 %.3f",
            self.step,
            self.elapsed / 60,
            top1,
            top5,
        )
        self.save(final=True)


class CVAEImages:
    """The CVAE's image side: new groups from prior samples (best of the group's augmented images),
    base groups distilled from the frozen teacher decoder."""

    TUNED = "decoder"  # what model.finetune tunes besides the new rows (see model.delta)
    LR = 3e-4

    def __init__(self, model, teacher, images, members, dev, trng, gen=None, names=None):
        self.model, self.teacher, self.images, self.members, self.dev, self.trng = (
            model,
            teacher,
            images,
            members,
            dev,
            trng,
        )
        model.encoder.requires_grad_(False)

    def loss(self, rng: random.Random) -> torch.Tensor:
        model, teacher, dev, trng = self.model, self.teacher, self.dev, self.trng
        new_groups = [rng.choice(list(self.members)) for _ in range(16)]
        most = max(len(m) for m in self.members.values())
        rows = [self.members[g] + [self.members[g][0]] * (most - len(self.members[g])) for g in new_groups]
        valid = torch.tensor(
            [[True] * len(self.members[g]) + [False] * (most - len(self.members[g])) for g in new_groups]
        )
        targets = augment(self.images[torch.tensor(rows).flatten()], trng).view(16, most, 4, 72, 72)
        z = torch.randn(16, model.cfg.z_dim, generator=trng).to(dev)
        new_logits = model.decoder.logits(z, model.groups(torch.tensor(new_groups, device=dev)))
        new_loss = best_of_group_loss(new_logits, targets.to(dev), valid.to(dev)) / 1000

        base_groups = torch.randint(0, teacher.cfg.num_groups, (16,), generator=trng).to(dev)
        zb = torch.randn(16, model.cfg.z_dim, generator=trng).to(dev)
        with torch.no_grad():
            teacher_img = teacher.decode(zb, teacher.groups(base_groups))
        base_logits = model.decoder.logits(zb, model.groups(base_groups))
        return 2 * new_loss + pixel_loss(base_logits, teacher_img).mean() / 1000


# the arch registry's names for this module (model.archs)
FinetuneTask = CVAEImages
