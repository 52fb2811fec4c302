"""`emoji-train`: train the base model, evaluate a checkpoint, fine-tune on your own emoji.

    emoji-train base --out checkpoints/base.pt --minutes 60        # the CPU recipe
    emoji-train eval --checkpoint checkpoints/base.pt
    emoji-train finetune --images DIR --out my.pt
    emoji-train upscaler --out checkpoints/upscaler.pt --minutes 20  # the sharpening ×4 refiner

The command line only: `base` hands a TrainConfig to its arch's Trainer (model.archs), `finetune` calls
model.finetune, `eval` calls model.evaluate.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from model.archs import ARCHS, get_arch
from model.data import DataError
from model.evaluate import run_eval
from model.finetune import finetune, read_examples
from model.networks import SIZES
from model.progress import Progress
from model.recipe import TrainConfig
from model.train_upscale import UpscaleRecipe, train_upscaler

log = logging.getLogger("emoji-train")
DEFAULTS = TrainConfig()


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless the help already says it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        bare = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if "default" in text or not action.option_strings or bare:  # `is`: 0 is a default worth showing
            return text
        return f"{text} (default: %(default)s)"


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=DEFAULTS.data, help="dataset cache file (built if missing)")
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
    base.add_argument("--out", type=Path, default=DEFAULTS.out, help="checkpoint to write")
    base.add_argument("--minutes", type=float, default=DEFAULTS.minutes, help="time budget for both phases")
    base.add_argument(
        "--max-steps", type=int, default=DEFAULTS.max_steps, help="stop after this many steps (0: time only)"
    )
    base.add_argument("--size", choices=sorted(SIZES), default=DEFAULTS.size, help="model size preset")
    base.add_argument(
        "--arch",
        choices=list(ARCHS),
        default=DEFAULTS.arch,
        help="cvae: the seed's conditional VAE (v1); maskgit: image tokens + masked transformer (v2); "
        "composer: v1's decoder conditioned on a thing plus modifiers, trained on kitchen composites (v3)",
    )
    base.add_argument(
        "--text-from",
        default=DEFAULTS.text_from,
        metavar="CKPT",
        help="reuse this checkpoint's text encoder (same emoji groups) and skip the text phase",
    )
    base.add_argument(
        "--init-from",
        default=DEFAULTS.init_from,
        metavar="CKPT",
        help="start from this checkpoint's weights where names and shapes match (composer: a v1 checkpoint); "
        "its text encoder is kept and the text phase skipped",
    )
    base.add_argument("--resume", action="store_true", help="continue from OUT.train")
    base.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="random seed (same seed + data: same run)"
    )
    base.add_argument(
        "--text-share", type=float, default=DEFAULTS.text_share, help="share of the budget for the text phase"
    )
    base.add_argument("--text-batch", type=int, default=DEFAULTS.text_batch, help="text phase: batch size")
    base.add_argument("--text-lr", type=float, default=DEFAULTS.text_lr, help="text phase: learning rate")
    base.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="image phase: batch size")
    base.add_argument("--lr", type=float, default=DEFAULTS.lr, help="image phase: learning rate")
    base.add_argument(
        "--posterior-share",
        type=float,
        default=DEFAULTS.posterior_share,
        help="share of each batch on the VAE (encoder) path; the rest decodes prior samples",
    )
    base.add_argument("--beta", type=float, default=DEFAULTS.beta, help="KL weight (after warm-up)")
    base.add_argument(
        "--prior-weight",
        type=float,
        default=DEFAULTS.prior_weight,
        help="weight of the best-of-group loss on prior samples (ties the decoder to the text)",
    )
    base.add_argument(
        "--ema", type=float, default=DEFAULTS.ema, help="decay of the weights' moving average (saved)"
    )
    base.add_argument(
        "--ae-share", type=float, default=DEFAULTS.ae_share, help="maskgit: budget share of the tokeniser"
    )
    base.add_argument(
        "--tf-batch", type=int, default=DEFAULTS.tf_batch, help="maskgit: transformer batch size"
    )
    base.add_argument(
        "--tf-lr", type=float, default=DEFAULTS.tf_lr, help="maskgit: transformer learning rate"
    )
    base.add_argument(
        "--compose-share",
        type=float,
        default=DEFAULTS.compose_share,
        help="composer: share of each batch made by the data kitchen (model.kitchen)",
    )
    base.add_argument(
        "--bank", type=int, default=DEFAULTS.bank, help="composer: kitchen combinations made up front"
    )
    base.add_argument(
        "--save-every", type=float, default=DEFAULTS.save_every, help="minutes between resumable saves"
    )
    base.add_argument(
        "--half",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.half,
        help="store the final weights as fp16 (half the size)",
    )
    base.add_argument("--label", default=DEFAULTS.label, help="model name shown in the bot's embeds")
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

    up = sub.add_parser(
        "upscaler",
        help="train the refiner that makes every arch's 72-px drawing a sharp 288-px one",
        description="Train the learned ×4 upscaler on real emoji (288 px) from degraded 72-px copies.",
        formatter_class=HelpFormatter,
    )
    up.add_argument("--out", type=Path, default=Path("checkpoints/upscaler.pt"), help="checkpoint to write")
    up_defaults = UpscaleRecipe()
    up.add_argument("--minutes", type=float, default=up_defaults.minutes, help="time budget")
    up.add_argument(
        "--adversarial",
        type=float,
        default=up_defaults.adversarial,
        help="weight of the PatchGAN loss next to L1 (0: L1 only)",
    )
    up.add_argument("--batch", type=int, default=up_defaults.batch, help="crops per step")
    up.add_argument("--lr", type=float, default=up_defaults.lr, help="learning rate (cosine to 0)")
    up.add_argument("--channels", type=int, default=up_defaults.channels, help="refiner width")
    up.add_argument("--blocks", type=int, default=up_defaults.blocks, help="refiner residual blocks")
    up.add_argument("--seed", type=int, default=up_defaults.seed, help="random seed")
    up.add_argument("--save-every", type=float, default=up_defaults.save_every, help="minutes between saves")
    up.add_argument(
        "--copies",
        nargs="*",
        default=list(up_defaults.copies),
        metavar="CKPT",
        help="generator checkpoints whose own renderings of the training emoji are inputs too",
    )
    up.add_argument(
        "--copy-share", type=float, default=up_defaults.copy_share, help="share of inputs from --copies"
    )
    up.add_argument("--resume", action="store_true", help="continue from OUT.train")
    add_data_args(up)

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
    ev.add_argument(
        "--upscaler", type=Path, default=None, help="refiner checkpoint (default: checkpoints/upscaler.pt)"
    )
    add_data_args(ev)
    return parser


def run_finetune(args: argparse.Namespace) -> None:
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


def recipe_from(args: argparse.Namespace, argv: Sequence[str]) -> TrainConfig:
    """The `base` flags as the trainers' typed recipe (every TrainConfig field is a flag but argv)."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "argv"}
    return TrainConfig(**values, argv=tuple(argv))


def run_base(args: argparse.Namespace, argv: Sequence[str]) -> None:
    recipe = recipe_from(args, argv)
    get_arch(recipe.arch).trainer.Trainer(recipe).run()


def run_upscaler(args: argparse.Namespace) -> None:
    values = {f.name: getattr(args, f.name) for f in fields(UpscaleRecipe) if hasattr(args, f.name)}
    values["copies"] = tuple(values.get("copies", ()))
    train_upscaler(args.out, UpscaleRecipe(**values), args.data, args.font, args.cldr, resume=args.resume)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "base":
            run_base(args, argv)
        elif args.command == "finetune":
            run_finetune(args)
        elif args.command == "upscaler":
            run_upscaler(args)
        elif args.command == "eval":
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
