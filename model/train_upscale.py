"""Training the refiner (`emoji-train upscaler`): real emoji at 288 px as targets, degraded 72-px inputs.

    emoji-train upscaler --out checkpoints/upscaler.pt --minutes 20            # the CPU recipe
    emoji-train upscaler --out out/l1.pt --minutes 20 --adversarial 0         # the L1-only comparison

Targets are the font's 136-px bitmaps fitted to 288 px; inputs are those images box-filtered to 72 px and then
damaged the way the shipped generators damage them (measured, see docs/model-findings.md): v1 is a real
emoji blurred by ~1.4 px, v2 adds haze and specks. Training runs on random 24-px crops (96 px out), so a
step is cheap; a PatchGAN discriminator (on 96-px crops) adds the adversarial loss that keeps edges hard and
fills flat, next to L1 for colour and alpha. Groups whose key hashes into the held-out slice are never trained
on; the report at the end is measured on them.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import ImageFont

from model.data import find_font, group_key, load_or_build, render_emoji
from model.progress import Progress
from model.quality import interior_detail, semi_transparent_share
from model.upscale import SCALE, Refiner, RefinerConfig, refine, save_refiner, valid_premultiplied

log = logging.getLogger("emoji-train")

HIGH = 72 * SCALE
CROP = 24  # input crop (72-px units); the target crop is CROP * SCALE
HELD_OUT = 0.05  # share of groups kept out of training, for the report


@dataclass
class UpscaleRecipe:
    """Everything that decides an upscaler run (saved in the checkpoint's meta)."""

    minutes: float = 20.0
    batch: int = 16
    lr: float = 2e-3
    adversarial: float = 0.01  # weight of the PatchGAN loss; 0 trains with L1 only
    warmup: float = 0.25  # share of the budget trained with L1 only before the adversarial loss starts
    channels: int = 32
    blocks: int = 3
    seed: int = 0
    save_every: float = 5.0  # minutes between resumable saves
    copies: tuple[str, ...] = ()  # generator checkpoints whose own renderings are inputs too
    copy_share: float = 0.5  # share of inputs taken from those copies (the rest: synthetic damage)


# ---------------------------------------------------------------------------------------------- data


def held_out(key: str) -> bool:
    """A fixed, content-independent split by group key (the same on every machine)."""
    return zlib.crc32(key.encode()) % 1000 < HELD_OUT * 1000


def render_high(emojis: list[str], font_path: str | Path | None = None) -> np.ndarray:
    """(N, 4, 288, 288) premultiplied float16: each emoji from the font's bitmap, fitted like the data."""
    font = ImageFont.truetype(str(find_font(font_path)), 109)
    out = np.zeros((len(emojis), 4, HIGH, HIGH), np.float16)
    for i, emoji in enumerate(emojis):
        image = render_emoji(font, emoji, HIGH)
        if image is not None:
            x = np.asarray(image.convert("RGBa"), np.float32) / 255
            out[i] = x.transpose(2, 0, 1)
    return out


def to_low(high: torch.Tensor) -> torch.Tensor:
    """The clean 72-px image of a 288-px one: a box filter, as rendering small from a large bitmap does."""
    return F.avg_pool2d(high, SCALE)


def gaussian(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of (B, C, H, W) by its own sigma (B,), separable, reflect-free (zeros outside)."""
    radius = 6
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None].clamp(min=1e-3) ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, K)
    b, c, h, w = x.shape
    flat = x.reshape(1, b * c, h, w)
    k = kernel.repeat_interleave(c, 0)
    flat = F.conv2d(flat, k[:, None, None, :], padding=(0, radius), groups=b * c)
    flat = F.conv2d(flat, k[:, None, :, None], padding=(radius, 0), groups=b * c)
    return flat.reshape(b, c, h, w)


def degrade(low: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """How our generators damage an emoji: blur (v1), haze and specks (v2), a little noise."""
    b = len(low)

    def uniform(lo: float, hi: float, n: int = b) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    def chance(p: float) -> torch.Tensor:
        return (torch.rand(b, generator=gen) < p).float()[:, None, None, None]

    sharp_share = chance(0.1)  # some clean inputs: a sharp drawing must stay as it is
    x = sharp_share * low + (1 - sharp_share) * gaussian(low, uniform(0.4, 1.9))
    haze = chance(0.3) * uniform(0.0, 0.5)[:, None, None, None]
    x = (1 - haze) * x + haze * gaussian(x, uniform(1.5, 3.0))
    # specks and holes: small blobs scaled down (holes) or shifted in colour
    specks = (torch.rand(b, 1, *low.shape[2:], generator=gen) < 0.015).float() * chance(0.35)
    specks = F.max_pool2d(specks, 3, 1, 1) * (torch.rand(b, 1, *low.shape[2:], generator=gen) < 0.6).float()
    hole = uniform(0.0, 0.7)[:, None, None, None]
    tint = torch.rand(b, 3, 1, 1, generator=gen) * x[:, 3:]
    x = torch.cat(
        [x[:, :3] * (1 - specks * hole) + specks * 0.3 * (tint - x[:, :3]), x[:, 3:] * (1 - specks * hole)], 1
    )
    x = x + torch.randn(x.shape, generator=gen) * uniform(0.0, 0.02)[:, None, None, None]
    return valid_premultiplied(x)


def generator_copies(high: torch.Tensor, groups: list[int], checkpoints: list[str]) -> list[torch.Tensor]:
    """Each generator's own rendering of every training emoji, (N, 4, 72, 72) float16 per checkpoint.

    The most literal "degraded the way our generators degrade": v1 rebuilds the emoji through its VAE (the
    encoder's mean, then its decoder: the decoder's own blur), v2 through its 9×9 image tokens (soft faces,
    blotches). Pixel-aligned with the real image, so the real 288-px image is the target.
    """
    from model.checkpoint import load_model

    copies = []
    for path in checkpoints:
        model, _ = load_model(path, "cpu")
        model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(high), 64):
                low = to_low(high[start : start + 64].float())
                if hasattr(model, "encoder"):  # the CVAE and the composer (v1, v3): rebuild through z
                    g = model.groups(torch.tensor(groups[start : start + 64]))
                    mean, _ = model.encoder(low, g)
                    out.append(model.decoder(mean, g).half())
                else:
                    out.append(model.decode_codes(model.tokenize(low)).half())
        copies.append(torch.cat(out))
        log.info("upscaler data: %s's copies of %d emoji", path, len(high))
    return copies


def crops(
    high: torch.Tensor, batch: int, gen: torch.Generator, copies: list[torch.Tensor], copy_share: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (96-px target, 24-px input) crop pairs that hold some of the drawing, half mirrored.

    An input is the clean crop damaged by `degrade`, or (``copy_share`` of them) the same crop of one
    generator's own copy of that emoji.
    """
    size = CROP * SCALE
    targets, inputs = [], []
    while len(targets) < batch:
        i = int(torch.randint(len(high), (1,), generator=gen))
        y, x = (int(v) for v in torch.randint(0, 72 - CROP + 1, (2,), generator=gen))
        target = high[i, :, y * SCALE : y * SCALE + size, x * SCALE : x * SCALE + size].float()
        if target[3].mean() < 0.15:
            continue
        if copies and float(torch.rand(1, generator=gen)) < copy_share:
            source = copies[int(torch.randint(len(copies), (1,), generator=gen))]
            low = source[i, :, y : y + CROP, x : x + CROP].float()
        else:
            low = degrade(to_low(target[None]), gen)[0]
        if torch.rand(1, generator=gen) < 0.5:
            target, low = target.flip(-1), low.flip(-1)
        targets.append(target)
        inputs.append(low)
    return torch.stack(targets), torch.stack(inputs)


# ---------------------------------------------------------------------------------------------- networks


class PatchDiscriminator(nn.Module):
    """PatchGAN: one real/fake logit per ~22-px patch of a 288-px image (the seed's day-1 discriminator)."""

    def __init__(self, channels: int = 32):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(4, c, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * c, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


# ---------------------------------------------------------------------------------------------- report


def to_uint8(premult: torch.Tensor) -> np.ndarray:
    """(N, 4, H, W) premultiplied -> (N, H, W, 4) straight-alpha uint8, as PIL would store it."""
    x = premult.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    alpha = x[..., 3:]
    colour = np.where(alpha > 1e-3, x[..., :3] / np.maximum(alpha, 1e-3), 0)
    return (np.concatenate([np.clip(colour, 0, 1), alpha], -1) * 255 + 0.5).astype(np.uint8)


@torch.no_grad()
def report(
    refiner: Refiner, high: torch.Tensor, copies: dict[str, torch.Tensor] | None = None, sigma: float = 1.4
) -> dict[str, float]:
    """On held-out real emoji blurred like v1's output (and each generator's own copy of them): L1 at 288 px
    and detail/haze versus the real image. "bicubic" is the plain upscale of the same blurred inputs.
    """
    low = to_low(high.float())
    blurred = gaussian(low, torch.full((len(low),), sigma))
    ours = refine(refiner, blurred)
    plain = valid_premultiplied(
        F.interpolate(blurred, scale_factor=SCALE, mode="bicubic", align_corners=False)
    )
    out: dict[str, float] = {}
    real_u8 = to_uint8(high.float())
    outputs = [("refiner", ours), ("bicubic", plain)]
    outputs += [(f"{Path(name).stem}_copy", refine(refiner, c.float())) for name, c in (copies or {}).items()]
    for name, guess in outputs:
        guess_u8 = to_uint8(guess)
        ratio = [interior_detail(g) / interior_detail(r) for g, r in zip(guess_u8, real_u8, strict=True)]
        out[f"{name}_l1"] = float((guess - high.float()).abs().mean())
        out[f"{name}_detail"] = float(np.nanmedian(ratio))
        out[f"{name}_semi"] = float(np.mean([semi_transparent_share(g) for g in guess_u8]))
    out["real_semi"] = float(np.mean([semi_transparent_share(r) for r in real_u8]))
    return out


# ---------------------------------------------------------------------------------------------- training


def train_upscaler(
    out: Path,
    recipe: UpscaleRecipe,
    data: str | Path = "data/dataset.npz",
    font: str | Path | None = None,
    cldr: str | Path | None = None,
    resume: bool = False,
) -> dict[str, float]:
    """Train ``recipe.minutes`` (resumable from ``OUT.train``), save ``out``, return the held-out report."""
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    dataset = load_or_build(Path(data), font, cldr)
    keys = [group_key(e) for e in dataset.emojis]
    train_idx = [i for i, k in enumerate(keys) if not held_out(k)]
    # the report's images: held-out groups (a tiny dataset may have none: then a few seen ones, said so)
    test_idx = [i for i, k in enumerate(keys) if held_out(k)][::4][:96] or train_idx[:8]
    started = time.monotonic()
    high = torch.from_numpy(render_high([dataset.emojis[i] for i in train_idx], font))
    test_high = torch.from_numpy(render_high([dataset.emojis[i] for i in test_idx], font))
    groups = [int(dataset.image_group[i]) for i in train_idx]
    copies = generator_copies(high, groups, list(recipe.copies)) if recipe.copies else []
    log.info(
        "upscaler data: %d train / %d report images rendered in %.1f s",
        len(high),
        len(test_high),
        time.monotonic() - started,
    )

    refiner = Refiner(RefinerConfig(recipe.channels, recipe.blocks))
    critic = PatchDiscriminator()
    opt_g = torch.optim.Adam(refiner.parameters(), lr=recipe.lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(critic.parameters(), lr=recipe.lr / 2, betas=(0.5, 0.99))
    state_path = out.with_name(out.name + ".train")
    step, elapsed = 0, 0.0
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        refiner.load_state_dict(state["refiner"])
        critic.load_state_dict(state["critic"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step, elapsed = state["step"], state["elapsed_s"]
        gen.manual_seed(recipe.seed + step)
        log.info("resumed at step %d (%.1f min done)", step, elapsed / 60)

    budget = recipe.minutes * 60
    progress = Progress("upscaler")
    clock, last_save = time.monotonic() - elapsed, time.monotonic()
    while (elapsed := time.monotonic() - clock) < budget:
        fraction = elapsed / budget
        lr = recipe.lr * 0.5 * (1 + math.cos(math.pi * fraction))
        for group in opt_g.param_groups:
            group["lr"] = lr
        target, low = crops(high, recipe.batch, gen, copies, recipe.copy_share)
        guess = refiner(low)
        loss = F.l1_loss(guess, target)
        adversarial = recipe.adversarial > 0 and fraction >= recipe.warmup
        if adversarial:
            loss_g = F.softplus(-critic(guess)).mean()
            loss = loss + recipe.adversarial * loss_g
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        if adversarial:
            loss_d = F.softplus(-critic(target)).mean() + F.softplus(critic(guess.detach())).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        step += 1
        progress.update(fraction, step, max(0.0, budget - elapsed), loss=loss.item())
        if time.monotonic() - last_save > recipe.save_every * 60:
            torch.save(
                {
                    "refiner": refiner.state_dict(),
                    "critic": critic.state_dict(),
                    "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    "step": step,
                    "elapsed_s": time.monotonic() - clock,
                },
                state_path,
            )
            last_save = time.monotonic()
    progress.close()
    refiner.eval()
    test_groups = [int(dataset.image_group[i]) for i in test_idx]
    test_copies = generator_copies(test_high, test_groups, list(recipe.copies)) if recipe.copies else []
    result = report(refiner, test_high, dict(zip(recipe.copies, test_copies, strict=True)))
    meta = {
        "kind": "upscaler",
        "step": step,
        "elapsed_s": elapsed,
        "recipe": asdict(recipe),
        "report": result,
    }
    save_refiner(out, refiner, meta)
    log.info("upscaler: %d steps in %.1f min -> %s; held-out %s", step, elapsed / 60, out, result)
    return result
