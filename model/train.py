"""`emoji-train`: train the base model, evaluate a checkpoint, fine-tune on your own emoji.

    emoji-train base --out checkpoints/base.pt --minutes 60        # the CPU recipe
    emoji-train eval --checkpoint checkpoints/base.pt
    emoji-train finetune --images DIR --out my.pt

Training has two phases: (1) the text encoder learns text -> emoji group on CLDR keywords, emojilib and the
chat lexicon, dressed up as chat; (2) the CVAE learns to draw every group. Both phases share one time budget;
a resumable state is written every few minutes next to the output.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.chat import chatify
from model.checkpoint import ARCHS, build_model, config_from, read_checkpoint, save_checkpoint
from model.data import DataError, EmojiDataset, find_cldr, load_or_build, read_cldr_annotations, split_texts
from model.device import DeviceUnavailable, resolve_device
from model.networks import SIZES, EmojiCVAE, ModelConfig, best_of_group_loss, vae_loss
from model.text import Tokenizer, to_device

log = logging.getLogger("emoji-train")
DEFAULT_CACHE = Path("data/dataset.npz")


def pick_device(name: str = "auto") -> torch.device:
    try:
        return resolve_device(name)
    except DeviceUnavailable as exc:
        raise SystemExit(f"error: --device {exc}") from None


def emoji_names(cldr: Path) -> dict[str, str]:
    """emoji -> English CLDR name, for reading emoji inside prompts.

    CLDR also names plain punctuation and Latin-1 symbols (":", "-", "©"); those stay text in prompts.
    (The shipped checkpoints predate this and keep the names their text encoder was trained with.)
    """
    names = {}
    for emoji, texts in read_cldr_annotations(cldr, "en").items():
        if all(ord(ch) < 0x2000 for ch in emoji):
            continue
        names[emoji] = texts[0]
    return names


def images_tensor(dataset: EmojiDataset) -> torch.Tensor:
    """(N, 4, 72, 72) premultiplied RGBA floats in [0, 1]."""
    x = torch.from_numpy(dataset.images).permute(0, 3, 1, 2).float() / 255.0
    return torch.cat([x[:, :3] * x[:, 3:], x[:, 3:]], dim=1)


class Progress:
    """A one-line progress report with ETA; a bar on a terminal, a log line every few seconds elsewhere."""

    def __init__(self, label: str, every_s: float = 15.0):
        self.label, self.every_s, self.last = label, every_s, 0.0
        self.tty = sys.stderr.isatty()

    def update(self, fraction: float, step: int, eta_s: float, **metrics: float) -> None:
        now = time.monotonic()
        if now - self.last < (0.5 if self.tty else self.every_s) and fraction < 1:
            return
        self.last = now
        bar = "#" * int(20 * fraction) + "-" * (20 - int(20 * fraction))
        stats = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        line = f"{self.label} [{bar}] {100 * fraction:5.1f}% step {step} {stats} eta {eta_s / 60:.1f} min"
        if self.tty:
            sys.stderr.write("\r" + line + " " * 4)
            sys.stderr.flush()
        else:
            log.info(line)

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


@dataclass
class TextPairs:
    """Training texts by group and by source, for the text phase's sampling mix."""

    texts: list[str]
    groups: np.ndarray
    by_group: list[list[int]]
    by_source: dict[str, list[int]]

    @classmethod
    def from_dataset(cls, dataset: EmojiDataset, allowed: set[str]) -> TextPairs:
        keep = [i for i, t in enumerate(dataset.pair_texts) if t in allowed]
        texts = [dataset.pair_texts[i] for i in keep]
        groups = dataset.pair_groups[keep]
        by_group: list[list[int]] = [[] for _ in range(dataset.num_groups)]
        by_source: dict[str, list[int]] = {}
        for j, i in enumerate(keep):
            by_group[int(groups[j])].append(j)
            by_source.setdefault(dataset.pair_source[i].split("-")[0], []).append(j)
        return cls(texts, groups, by_group, by_source)

    def sample(self, rng: random.Random, n: int) -> tuple[list[str], list[int]]:
        """Mix: all pairs, one group at a time (people do not dominate), lexicon and emojilib upweighted."""
        nonempty = [g for g, idx in enumerate(self.by_group) if idx]
        picks = []
        for _ in range(n):
            r = rng.random()
            if r < 0.35:
                j = rng.randrange(len(self.texts))
            elif r < 0.7:
                j = rng.choice(self.by_group[rng.choice(nonempty)])
            elif r < 0.85 and self.by_source.get("lexicon"):
                j = rng.choice(self.by_source["lexicon"])
            else:
                j = rng.choice(self.by_source.get("emojilib") or range(len(self.texts)))
            picks.append(j)
        return [chatify(self.texts[j], rng) for j in picks], [int(self.groups[j]) for j in picks]


def lr_at(fraction: float, peak: float, warmup: float = 0.03) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if fraction < warmup:
        return peak * fraction / warmup
    progress = min(1.0, (fraction - warmup) / (1 - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def text_accuracy(
    model: EmojiCVAE,
    tok: Tokenizer,
    texts: list[str],
    targets: list[set[int]],
    device: torch.device,
    batch: int = 512,
) -> tuple[float, float]:
    """Top-1 / top-5: is an acceptable group among the text encoder's best guesses?"""
    model.eval()
    top1 = top5 = 0
    for i in range(0, len(texts), batch):
        logits = model.text(to_device(tok.encode(texts[i : i + batch]), device))
        best = logits.topk(5, dim=-1).indices.tolist()
        for guess, ok in zip(best, targets[i : i + batch], strict=True):
            top1 += guess[0] in ok
            top5 += any(g in ok for g in guess)
    model.train()
    return top1 / max(1, len(texts)), top5 / max(1, len(texts))


def held_out_targets(dataset: EmojiDataset, held: set[str]) -> tuple[list[str], list[set[int]]]:
    """Held-out texts with every group that carries them (a text like 'face' has many)."""
    targets: dict[str, set[int]] = {}
    for t, g in zip(dataset.pair_texts, dataset.pair_groups.tolist(), strict=True):
        if t in held:
            targets.setdefault(t, set()).add(g)
    texts = sorted(targets)
    return texts, [targets[t] for t in texts]


class Trainer:
    """Owns the model, optimisers, EMA copy and the time budget across phases and resumes (the CVAE)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = pick_device(args.device)
        torch.manual_seed(args.seed)
        self.rng = random.Random(args.seed)
        cldr = find_cldr(args.cldr)
        self.dataset = load_or_build(Path(args.data), args.font, cldr)
        self.train_texts, self.held = split_texts(self.dataset)
        self.pairs = TextPairs.from_dataset(self.dataset, self.train_texts)
        cfg = ModelConfig(arch=args.arch, num_groups=self.dataset.num_groups, **SIZES[args.size])
        self.tok = Tokenizer(cfg.text_buckets, emoji_names(cldr))
        self.model = build_model(cfg).to(self.device)
        self.text_ready = self.text_copied = False
        if getattr(args, "text_from", None):
            self.copy_text_encoder(args.text_from)
        self.opts = self.make_optimizers()
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.step, self.elapsed, self.image_steps = 0, 0.0, 0
        self.state_path = Path(str(args.out) + ".train")
        if args.resume:
            self._resume()

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cvae_params = [p for n, p in self.model.named_parameters() if not n.startswith("text.")]
        return {
            "text_opt": torch.optim.AdamW(
                self.model.text.parameters(), lr=self.args.text_lr, weight_decay=0.0
            ),
            "cvae_opt": torch.optim.AdamW(cvae_params, lr=self.args.lr, weight_decay=1e-4),
        }

    def copy_text_encoder(self, path: str) -> None:
        """Start from another checkpoint's text encoder (same groups): the text phase is skipped."""
        payload = read_checkpoint(path)
        if list(payload["meta"]["groups"]) != list(self.dataset.groups):
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

    @property
    def text_share(self) -> float:
        return 0.0 if self.text_copied else self.args.text_share

    # -- budget ---------------------------------------------------------------------------------------
    @property
    def budget_s(self) -> float:
        return self.args.minutes * 60

    def fraction(self) -> float:
        by_time = self.elapsed / self.budget_s
        by_steps = self.step / self.args.max_steps if self.args.max_steps else 0.0
        return min(1.0, max(by_time, by_steps))

    # -- checkpoints ------------------------------------------------------------------------------------
    def meta(self) -> dict:
        ds = self.dataset
        return {
            "groups": list(ds.groups),
            "group_emoji": [ds.representative(g) for g in range(ds.num_groups)],
            "emoji_names": self.tok.emoji_names,
            "step": self.step,
            "elapsed_s": round(self.elapsed, 1),
            "recipe": " ".join(sys.argv[1:]) if sys.argv else "",
            "label": self.args.label,
        }

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
            save_checkpoint(self.args.out, self.ema, self.meta(), half=self.args.half)
            log.info("wrote %s (%.1f MB)", self.args.out, Path(self.args.out).stat().st_size / 2**20)

    def _resume(self) -> None:
        if not self.state_path.is_file():
            log.warning("--resume: no training state at %s; starting fresh", self.state_path)
            return
        payload = read_checkpoint(self.state_path)
        self.prepare_resume(config_from(payload))
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
        log.info("resumed at step %d (%.1f of %.1f min)", self.step, self.elapsed / 60, self.args.minutes)

    def prepare_resume(self, saved: ModelConfig) -> None:
        """Shape the models like the saved state before it is checked and loaded (v2 grows its code bank)."""

    # -- phases ---------------------------------------------------------------------------------------
    def text_step(self, fraction: float) -> float:
        texts, groups = self.pairs.sample(self.rng, self.args.text_batch)
        opt = self.opts["text_opt"]
        for group in opt.param_groups:
            group["lr"] = lr_at(fraction, self.args.text_lr)
        logits = self.model.text(to_device(self.tok.encode(texts), self.device))
        loss = F.cross_entropy(logits, torch.tensor(groups, device=self.device), label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    def cvae_step(self, images: torch.Tensor, group_images: list[np.ndarray], fraction: float) -> dict:
        """One step: the VAE path on a quarter of the batch (any image, so variants are modelled), the
        prior path on the rest (one group at a time, so every emoji gets drawn, people do not dominate)."""
        n_post = max(1, int(self.args.batch_size * self.args.posterior_share))
        n_prior = self.args.batch_size - n_post
        opt = self.opts["cvae_opt"]
        for group in opt.param_groups:
            group["lr"] = lr_at(fraction, self.args.lr)
        beta = self.args.beta * min(1.0, fraction / 0.05)

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
            loss = loss + self.args.prior_weight * prior / 1000
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
        decay = min(self.args.ema, (1 + self.image_steps) / (10 + self.image_steps))
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
        progress = Progress(f"train {self.args.arch} {self.args.size}")
        last_save = time.monotonic()
        while self.fraction() < 1.0:
            t0 = time.monotonic()
            metrics = self.train_step(self.fraction())
            self.step += 1
            self.elapsed += time.monotonic() - t0
            eta = self.budget_s - self.elapsed
            if self.args.max_steps:
                eta = min(eta, self.elapsed / max(1, self.step) * (self.args.max_steps - self.step))
            progress.update(self.fraction(), self.step, max(0.0, eta), **metrics)
            if time.monotonic() - last_save > self.args.save_every * 60:
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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless the help already says it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        bare = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if "default" in text or not action.option_strings or bare:  # `is`: 0 is a default worth showing
            return text
        return f"{text} (default: %(default)s)"


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=str(DEFAULT_CACHE), help="dataset cache file (built if missing)")
    p.add_argument("--font", default=None, help="Noto Color Emoji font (default: Debian's)")
    p.add_argument("--cldr", default=None, help="CLDR common/ folder (default: Debian's)")
    p.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA if available, else CPU"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emoji-train", description=__doc__.split("\n")[0], formatter_class=HelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    base = sub.add_parser(
        "base",
        help="train the base model from the open data",
        description="Train the base model from the open data (CLDR, emojilib, the emoji font).",
        formatter_class=HelpFormatter,
    )
    base.add_argument("--out", type=Path, default=Path("checkpoints/base.pt"), help="checkpoint to write")
    base.add_argument("--minutes", type=float, default=60.0, help="time budget for both phases")
    base.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: time only)")
    base.add_argument("--size", choices=sorted(SIZES), default="base", help="model size preset")
    base.add_argument(
        "--arch",
        choices=list(ARCHS),
        default="cvae",
        help="cvae: the seed's conditional VAE (v1); maskgit: image tokens + masked transformer (v2)",
    )
    base.add_argument(
        "--text-from",
        default=None,
        metavar="CKPT",
        help="reuse this checkpoint's text encoder (same emoji groups) and skip the text phase",
    )
    base.add_argument("--resume", action="store_true", help="continue from OUT.train")
    base.add_argument("--seed", type=int, default=0, help="random seed (same seed + data: same run)")
    base.add_argument("--text-share", type=float, default=0.12, help="share of the budget for the text phase")
    base.add_argument("--text-batch", type=int, default=256, help="text phase: batch size")
    base.add_argument("--text-lr", type=float, default=3e-3, help="text phase: learning rate")
    base.add_argument("--batch-size", type=int, default=64, help="image phase: batch size")
    base.add_argument("--lr", type=float, default=2e-3, help="image phase: learning rate")
    base.add_argument(
        "--posterior-share",
        type=float,
        default=0.25,
        help="share of each batch on the VAE (encoder) path; the rest decodes prior samples",
    )
    base.add_argument("--beta", type=float, default=1.0, help="KL weight (after warm-up)")
    base.add_argument(
        "--prior-weight",
        type=float,
        default=1.0,
        help="weight of the best-of-group loss on prior samples (ties the decoder to the text)",
    )
    base.add_argument("--ema", type=float, default=0.998, help="decay of the weights' moving average (saved)")
    base.add_argument("--ae-share", type=float, default=0.3, help="maskgit: budget share of the tokeniser")
    base.add_argument("--tf-batch", type=int, default=48, help="maskgit: transformer batch size")
    base.add_argument("--tf-lr", type=float, default=1e-3, help="maskgit: transformer learning rate")
    base.add_argument("--save-every", type=float, default=5.0, help="minutes between resumable saves")
    base.add_argument(
        "--half",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="store the final weights as fp16 (half the size)",
    )
    base.add_argument("--label", default="base", help="model name shown in the bot's embeds")
    add_data_args(base)

    ft = sub.add_parser(
        "finetune",
        help="teach a checkpoint your own emoji (images named by their text)",
        description="Teach a checkpoint your own emoji: images named by their text.",
        formatter_class=HelpFormatter,
    )
    ft.add_argument(
        "--images",
        type=Path,
        required=True,
        help="a folder of images named by their text (축하_고양이.png) or a CSV of text,path",
    )
    ft.add_argument("--out", type=Path, required=True, help="checkpoint to write (required)")
    ft.add_argument("--base", default=None, help="checkpoint to start from (default: the shipped one)")
    ft.add_argument("--steps", type=int, default=None, help="default: automatic, from the number of names")
    ft.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA if available, else CPU"
    )
    ft.add_argument("--label", default="custom", help="model name shown in the bot's embeds")

    ev = sub.add_parser(
        "eval",
        help="measure a checkpoint: hit@1, sharpness, diversity, sample grid",
        description="Measure checkpoints: hit@1, sharpness, diversity, and a sample grid image.",
        formatter_class=HelpFormatter,
    )
    ev.add_argument(
        "--checkpoint",
        action="append",
        default=None,
        help="checkpoint to measure; repeat it to compare several in one table (default: the shipped one)",
    )
    ev.add_argument("--prompts", default=None, help="chat prompt file (default: the bundled one)")
    ev.add_argument("--samples", type=int, default=4, help="samples per prompt")
    ev.add_argument("--limit", type=int, default=300, help="prompts per CLDR set (seen / held-out)")
    ev.add_argument("--grid", default="out/eval_grid.png", help="sample grid image to write")
    ev.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    add_data_args(ev)
    return parser


def run_finetune(args: argparse.Namespace) -> None:
    from model.finetune import finetune, read_examples

    if not args.images.exists():
        raise SystemExit(f"error: {args.images} does not exist")
    try:
        examples = read_examples(args.images)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    if not examples:
        raise SystemExit(f"error: no images (.png .jpg .gif .webp) found in {args.images}")
    bar = Progress("finetune")
    result = finetune(
        examples,
        args.out,
        base=args.base,
        steps=args.steps,
        device=args.device,
        label=args.label,
        progress=lambda p: bar.update(p.step / p.total, p.step, p.eta_s, loss=p.loss),
    )
    bar.close()
    log.info("learnt %d names in %.0f s -> %s", result["names"], result["seconds"], args.out)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    args = build_parser().parse_args(argv)
    try:
        if args.command == "base":
            if args.arch == "maskgit":
                from model.train_maskgit import MaskGITTrainer

                MaskGITTrainer(args).run()
            else:
                Trainer(args).run()
        elif args.command == "finetune":
            run_finetune(args)
        elif args.command == "eval":
            from model.evaluate import run_eval

            run_eval(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the last periodic save is kept; continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
