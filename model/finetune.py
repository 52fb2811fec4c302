"""Fine-tune a base checkpoint on a server's own emoji: new names become new emoji groups.

Each distinct name gets a new group: a text prototype (initialised from the frozen text encoder's vector
for the name, so it is found at once) and a group embedding for the decoder (initialised from the emoji
the base model thinks the name means). Training then
  - teaches the prototypes the names in chat-like variants, against replayed base texts whose targets are
    the frozen base model's own answers (so base prompts keep their meaning);
  - teaches the decoder the new images (augmented: small shifts, scales, colour jitter; weighted up),
    while distilling the frozen base decoder on replayed base groups (so nothing is forgotten).
No dataset is needed: the replay comes from the base checkpoint itself.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from model.chat import chatify
from model.checkpoint import build_model, load_model, save_checkpoint
from model.data import fit_square
from model.device import resolve_device
from model.networks import best_of_group_loss, pixel_loss
from model.prompt import name_key
from model.sample import Generator
from model.text import to_device

log = logging.getLogger(__name__)

CUSTOM_PREFIX = "custom:"


@dataclass
class FinetuneProgress:
    step: int
    total: int
    loss: float
    elapsed_s: float

    @property
    def eta_s(self) -> float:
        return self.elapsed_s / max(1, self.step) * (self.total - self.step)


class FinetuneCancelled(RuntimeError):
    """should_stop() said so; nothing was written."""


def auto_steps(num_names: int, device: torch.device) -> int:
    """Enough steps to learn the names; sized so 50 emoji take a few minutes on 2 CPU cores."""
    if device.type == "cuda":
        return 1500
    return int(min(500, max(200, 120 + 6 * num_names)))


def to_premultiplied_tensor(image: Image.Image) -> torch.Tensor:
    """Any RGBA image -> (4, 72, 72) premultiplied floats, fitted and centred like the base data."""
    rgba = np.asarray(fit_square(image.convert("RGBA")), dtype=np.float32) / 255
    x = torch.from_numpy(rgba).permute(2, 0, 1)
    return torch.cat([x[:3] * x[3:], x[3:]])


def augment(images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Small random shifts, scales and colour jitter: a handful of images must not be learnt as pixels."""
    n = len(images)
    scale = 1 + (torch.rand(n, generator=rng) - 0.5) * 0.16  # 0.92 - 1.08
    shift = (torch.rand(n, 2, generator=rng) - 0.5) * 0.12
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gain = 1 + (torch.rand(n, 3, 1, 1, generator=rng) - 0.5) * 0.2
    colour = torch.minimum(out[:, :3] * gain, out[:, 3:])  # premultiplied colour never exceeds alpha
    return torch.cat([colour, out[:, 3:]], dim=1)


def extend_model(base: nn.Module, new_groups: int) -> nn.Module:
    """A copy of `base` with room for `new_groups` more groups (new rows filled in by the caller)."""
    cfg = dataclasses.replace(base.cfg, num_groups=base.cfg.num_groups + new_groups)
    model = build_model(cfg)
    state = base.state_dict()
    for key in ("text.prototypes", "groups.weight"):
        grown = model.state_dict()[key].clone()
        grown[: state[key].shape[0]] = state[key]
        state[key] = grown
    model.load_state_dict(state)
    return model


class CVAEImages:
    """The CVAE's image side: new groups from prior samples (best of the group's augmented images),
    base groups distilled from the frozen teacher decoder."""

    def __init__(self, model, teacher, images, members, dev, trng):
        self.model, self.teacher, self.images, self.members, self.dev, self.trng = (
            model,
            teacher,
            images,
            members,
            dev,
            trng,
        )
        model.encoder.requires_grad_(False)

    def param_groups(self) -> list[dict]:
        return [{"params": self.model.decoder.parameters(), "lr": 3e-4}]

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


class MaskGITImages:
    """Generator v2's image side: the transformer learns the codes of the new (augmented) images given
    the new group and the name's text vector, and replays base emoji from the code bank (or codes the frozen
    teacher draws), so the base emoji keep their looks. The new emoji join the code bank. The tokeniser stays
    frozen."""

    REPLAY = 192

    def __init__(self, model, teacher, images, members, dev, trng, gen: Generator, names: dict[int, str]):
        self.model, self.images, self.members, self.dev, self.trng = model, images, members, dev, trng
        self.gen, self.names = gen, names
        model.encoder.requires_grad_(False)
        model.decoder.requires_grad_(False)
        with torch.no_grad():  # the new emoji join the code bank: sampling can start from them
            rows = [i for g in sorted(members) for i in members[g]]
            new_codes = model.tokenize(images[torch.tensor(rows)].to(dev))
            new_groups = torch.tensor([g for g in sorted(members) for _ in members[g]])
            model.set_bank(
                torch.cat([model.bank_codes, new_codes.to(model.bank_codes.device).to(torch.int16)]),
                torch.cat([model.bank_groups.cpu(), new_groups]),
            )
        self.replay_groups, self.replay_codes = self._replay_bank(teacher)
        texts = [meta_name(gen, int(g)) for g in self.replay_groups]
        self.replay_vectors = torch.stack([gen.text_vector(t) for t in texts])

    @torch.no_grad()
    def _replay_bank(self, teacher) -> tuple[torch.Tensor, torch.Tensor]:
        """Base emoji to replay: rows of the teacher's code bank, or (no bank) codes the teacher draws."""
        from model.maskgit import sample_codes

        if teacher.cfg.bank_size:
            rows = torch.randint(0, teacher.cfg.bank_size, (self.REPLAY,), generator=self.trng)
            return teacher.bank_groups[rows.to(self.dev)].cpu(), teacher.bank_codes[rows.to(self.dev)].long()
        groups = torch.randint(0, teacher.cfg.num_groups, (self.REPLAY,), generator=self.trng)
        vectors = torch.stack([self.gen.text_vector(meta_name(self.gen, int(g))) for g in groups])
        out = []
        for i in range(0, self.REPLAY, 16):
            g = groups[i : i + 16].to(self.dev)
            rngs = [torch.Generator().manual_seed(1000 + i + k) for k in range(len(g))]
            cond = teacher.transformer.condition(vectors[i : i + 16], teacher.groups(g), len(g))
            out.append(sample_codes(teacher, cond, rngs, guidance=self.gen.guidance))
        return groups, torch.cat(out)

    def param_groups(self) -> list[dict]:
        return [{"params": self.model.transformer.parameters(), "lr": 2e-4}]

    def loss(self, rng: random.Random) -> torch.Tensor:
        from model.maskgit import masked_code_loss

        model, dev = self.model, self.dev
        new_groups = [rng.choice(list(self.members)) for _ in range(16)]
        picks = [rng.choice(self.members[g]) for g in new_groups]
        with torch.no_grad():
            codes = model.tokenize(augment(self.images[torch.tensor(picks)], self.trng).to(dev))
            texts = [chatify(self.names[g], rng, 0.5) for g in new_groups]
            vectors = model.text.embed(to_device(self.gen.tokenizer.encode(texts), dev))
        new_loss = masked_code_loss(model, codes, vectors, torch.tensor(new_groups, device=dev), self.trng)
        idx = torch.randint(0, self.REPLAY, (16,), generator=self.trng)
        replay = masked_code_loss(
            model,
            self.replay_codes[idx.to(dev)],
            self.replay_vectors[idx],
            self.replay_groups[idx].to(dev),
            self.trng,
        )
        return 2 * new_loss + replay


def meta_name(gen: Generator, group: int) -> str:
    """A base group's name (its representative emoji's CLDR name) to condition replayed codes on."""
    emoji = gen.group_emoji[group]
    return gen.tokenizer.emoji_names.get(emoji) or gen.tokenizer.emoji_names.get(
        emoji.replace("\ufe0f", ""), emoji
    )


def finetune(
    examples: Sequence[tuple[str, Image.Image]],
    out: str | Path,
    base: str | Path | None = None,
    steps: int | None = None,
    device: str | torch.device = "auto",
    label: str = "server",
    progress: Callable[[FinetuneProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int = 0,
) -> dict:
    """Train on (name, image) pairs starting from `base`; write the new checkpoint to `out`.

    Returns {"steps", "names", "seconds", "loss"}. Raises ValueError for no usable examples and
    FinetuneCancelled when should_stop() turns true (the previous checkpoint at `out` is untouched).
    """
    if not examples:
        raise ValueError("no emoji to train on")
    dev = resolve_device(device)
    started = time.monotonic()
    teacher, meta = load_model(base, dev)
    teacher.requires_grad_(False)
    gen = Generator(teacher, meta, dev)

    names = sorted({name_key(text) for text, _ in examples})
    name_group = {n: teacher.cfg.num_groups + i for i, n in enumerate(names)}
    images = torch.stack([to_premultiplied_tensor(im) for _, im in examples])  # (E, 4, 72, 72)
    example_group = [name_group[name_key(t)] for t, _ in examples]
    members = {g: [i for i, eg in enumerate(example_group) if eg == g] for g in name_group.values()}

    model = extend_model(teacher, len(names)).to(dev)
    with torch.no_grad():  # warm starts: the name's own text vector, the base emoji it already suggests
        name_vecs = teacher.text.embed(to_device(gen.tokenizer.encode(names), dev))
        guesses = gen.group_probs(names).argmax(-1).to(dev)
        model.text.prototypes[teacher.cfg.num_groups :] = name_vecs
        model.groups.weight[teacher.cfg.num_groups :] = teacher.groups(guesses)

    model.train()
    model.text.requires_grad_(False)
    model.text.prototypes.requires_grad_(True)
    rng, trng = random.Random(seed), torch.Generator().manual_seed(seed)
    if model.cfg.arch == "maskgit":
        group_names = {g: n for n, g in name_group.items()}
        task = MaskGITImages(model, teacher, images, members, dev, trng, gen, group_names)
    else:
        task = CVAEImages(model, teacher, images, members, dev, trng)
    opt = torch.optim.Adam(
        [
            {"params": [model.text.prototypes], "lr": 5e-3},
            {"params": [model.groups.weight], "lr": 3e-3},
            *task.param_groups(),
        ]
    )
    base_texts = sorted(set(meta["emoji_names"].values()))
    total = steps or auto_steps(len(names), dev)
    loss_value = float("nan")
    for step in range(1, total + 1):
        if should_stop and should_stop():
            raise FinetuneCancelled("fine-tuning was cancelled")
        # -- text: the new names (as chat) against replayed base texts with the teacher's answers
        picked = [rng.choice(names) for _ in range(32)]
        new_texts = [chatify(name, rng, 0.5) for name in picked]
        new_targets = [name_group[name] for name in picked]
        replay = [chatify(rng.choice(base_texts), rng, 0.3) for _ in range(64)]
        with torch.no_grad():
            replay_targets = teacher.text(to_device(gen.tokenizer.encode(replay), dev)).argmax(-1)
            text_vecs = model.text.embed(to_device(gen.tokenizer.encode(new_texts + replay), dev))
        logits = model.text.logit_scale.exp() * text_vecs @ F.normalize(model.text.prototypes, dim=-1).t()
        targets = torch.cat([torch.tensor(new_targets, device=dev), replay_targets])
        text_loss = F.cross_entropy(logits, targets)

        loss = text_loss + task.loss(rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # base prototypes stay exactly as they were
            model.text.prototypes[: teacher.cfg.num_groups] = teacher.text.prototypes
        loss_value = loss.item()
        if progress:
            progress(FinetuneProgress(step, total, loss_value, time.monotonic() - started))

    model.eval()
    new_meta = dict(meta)
    new_meta["groups"] = list(meta["groups"]) + [CUSTOM_PREFIX + n for n in names]
    new_meta["group_emoji"] = list(meta["group_emoji"]) + [meta["group_emoji"][int(g)] for g in guesses]
    new_meta["custom_names"] = names
    new_meta["label"] = label
    save_checkpoint(out, model, new_meta, half=True)
    seconds = time.monotonic() - started
    log.info("fine-tuned %d names in %d steps (%.0f s) -> %s", len(names), total, seconds, out)
    return {"steps": total, "names": len(names), "seconds": round(seconds, 1), "loss": loss_value}


def read_examples(source: Path) -> list[tuple[str, Image.Image]]:
    """A folder of images named by their text (축하_고양이.png -> "축하 고양이") or a CSV of text,path."""
    import csv

    pairs = []
    if source.is_dir():
        for path in sorted(source.iterdir()):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".webp"):
                pairs.append((path.stem.replace("_", " ").strip(), path))
    else:
        with source.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                if len(row) >= 2 and row[0].strip() and not row[0].startswith("#"):
                    path = Path(row[1].strip())
                    pairs.append((row[0].strip(), path if path.is_absolute() else source.parent / path))
    examples = []
    for text, path in pairs:
        try:
            with Image.open(path) as im:
                im.seek(0)
                examples.append((text, im.convert("RGBA")))
        except (OSError, ValueError) as exc:  # missing, unreadable or not an image
            raise ValueError(f"{path}: cannot read this image for {text!r} ({exc})") from exc
    return examples
