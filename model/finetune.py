"""Fine-tune a base checkpoint on a server's own emoji: new names become new emoji groups.

Each distinct name gets a new group: a text prototype (initialised from the frozen text encoder's vector
for the name, so it is found at once) and a group embedding for the decoder (initialised from the emoji
the base model thinks the name means). Training then
  - teaches the prototypes the names in chat-like variants, against replayed base texts whose targets are
    the frozen base model's own answers (so base prompts keep their meaning);
  - teaches the decoder the new images (augmented: small shifts, scales, colour jitter; weighted up),
    while distilling the frozen base decoder on replayed base groups (so nothing is forgotten).
No dataset is needed: the replay comes from the base checkpoint itself.

What it may change is kept small, so the result is a delta over the base (model.delta, under 2 MB):
the new names' rows (base prototypes and group embeddings stay exactly as they were), and in the arch's
tuned module (FinetuneTask.TUNED: the CVAE's decoder, MaskGIT's transformer) its small layers whole and
its large weights through low-rank adapters.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from model.archs import get_arch
from model.augment import to_premultiplied_tensor
from model.chat import chatify
from model.checkpoint import (
    SHIPPED_CHECKPOINT,
    build_model,
    file_identity,
    load_model,
    save_checkpoint,
    write_atomically,
)
from model.delta import add_adapters, bake, make_delta
from model.device import resolve_device
from model.prompt import name_key
from model.reading import CUSTOM_PREFIX
from model.sample import Generator
from model.text import to_device

log = logging.getLogger(__name__)

# Adam moves each adapter factor ~lr a step, but B starts at zero, so B @ A takes far longer to move as far
# as a whole weight would: the factors learn this many times faster (bench/finetune.py, v1: submitted
# hit@1 0.870 -> 0.980 from 1x to 10x, base held-out drop 0.027 -> 0.029).
ADAPTER_LR_SCALE = 10.0


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
    full_out: str | Path | None = None,
) -> dict:
    """Train on (name, image) pairs starting from `base`; write the server model (a delta over `base`,
    model.delta) to `out`, and with `full_out` also the whole tuned model as a standalone fp32 checkpoint.

    Returns {"steps", "names", "seconds", "loss"}. Raises ValueError for no usable examples and
    FinetuneCancelled when should_stop() turns true (the previous file at `out` is untouched).
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
    model.requires_grad_(False)
    model.text.prototypes.requires_grad_(True)
    model.groups.weight.requires_grad_(True)
    rng, trng = random.Random(seed), torch.Generator().manual_seed(seed)
    group_names = {g: n for n, g in name_group.items()}
    task_type = get_arch(model.cfg.arch).trainer.FinetuneTask
    task = task_type(model, teacher, images, members, dev, trng, gen, group_names)
    tuned, factors = add_adapters(model, task_type.TUNED, torch.Generator().manual_seed(seed + 1))
    opt = torch.optim.Adam(
        [
            {"params": [model.text.prototypes], "lr": 5e-3},
            {"params": [model.groups.weight], "lr": 3e-3},
            {"params": tuned, "lr": task_type.LR},
            {"params": factors, "lr": task_type.LR * ADAPTER_LR_SCALE},
        ]
    )
    base_texts = sorted(set(meta.emoji_names.values()))
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
        with torch.no_grad():  # base rows stay exactly as they were: only the new names' are the delta's
            model.text.prototypes[: teacher.cfg.num_groups] = teacher.text.prototypes
            model.groups.weight[: teacher.cfg.num_groups] = teacher.groups.weight
        loss_value = loss.item()
        if progress:
            progress(FinetuneProgress(step, total, loss_value, time.monotonic() - started))

    model.eval()
    new_meta = dataclasses.replace(
        meta,
        groups=list(meta.groups) + [CUSTOM_PREFIX + n for n in names],
        group_emoji=list(meta.group_emoji) + [meta.group_emoji[int(g)] for g in guesses],
        custom_names=names,
        label=label,
    )
    adapters = bake(model)
    base_path = Path(base) if base else SHIPPED_CHECKPOINT
    delta = make_delta(teacher, meta, file_identity(base_path), model, new_meta, adapters, base_path)
    write_atomically(out, delta)
    if full_out:
        save_checkpoint(full_out, model, new_meta)
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
