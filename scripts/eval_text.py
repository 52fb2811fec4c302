"""Text-side numbers per prompt kind: text top-1/top-5 and (with --hit) hit@1 of the generated images.

The blind set (chat_prompts_blind.tsv) is scored per kind; the dev set (chat_prompts_eval.tsv) per
word/sentence. Fast without --hit (the text side only); --hit draws images like `emoji-train eval`.

Usage: python scripts/eval_text.py [--checkpoint PATH ...] [--hit] [--samples 2] [--no-reader]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from model.data import RESOURCES, load_or_build
from model.evaluate import NearestEmoji, PromptSet, chat_sets, evaluate_set
from model.recipe import TrainConfig
from model.sample import Generator


def overall(name: str, sets: list[PromptSet]) -> PromptSet:
    return PromptSet(name, [t for s in sets for t in s.texts], [a for s in sets for a in s.acceptable])


def text_scores(gen: Generator, ps: PromptSet) -> tuple[float, float, float]:
    """(top-1, top-5, ms per request)."""
    start = time.perf_counter()
    probs = gen.group_probs(ps.texts).numpy()
    ms = 1000 * (time.perf_counter() - start) / max(1, len(ps.texts))
    top5 = np.argsort(-probs, axis=1)[:, :5]
    top1 = np.mean([t[0] in ok for t, ok in zip(top5, ps.acceptable, strict=True)])
    top5s = np.mean([any(g in ok for g in t) for t, ok in zip(top5, ps.acceptable, strict=True)])
    return float(top1), float(top5s), ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", default=None)
    parser.add_argument("--hit", action="store_true", help="also draw images and report hit@1")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--no-reader", action="store_true", help="the checkpoint's own text encoder only")
    parser.add_argument("--sets", default="blind,dev", help="comma-separated: blind, tune, dev")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = load_or_build(Path(TrainConfig().data)) if args.hit else None
    nearest = NearestEmoji(dataset) if dataset is not None else None
    for checkpoint in args.checkpoint or [None]:
        gen = Generator.load(checkpoint, "cpu")
        if args.no_reader and hasattr(gen, "reader"):
            gen.reader = None
        index = {k: i for i, k in enumerate(gen.meta.groups)}
        sets: list[PromptSet] = []
        if "blind" in args.sets:
            blind = chat_sets(RESOURCES / "chat_prompts_blind.tsv", index)
            sets += [PromptSet(s.name.replace("chat-", "blind-"), s.texts, s.acceptable) for s in blind]
            sets.append(overall("blind-all", blind))
        if "tune" in args.sets:  # written like the blind set, for choosing weights without it
            tune = chat_sets(RESOURCES / "chat_prompts_tune.tsv", index)
            sets += [PromptSet(s.name.replace("chat-", "tune-"), s.texts, s.acceptable) for s in tune]
            sets.append(overall("tune-all", tune))
        if "dev" in args.sets:
            dev = chat_sets(RESOURCES / "chat_prompts_eval.tsv", index)
            sets += dev + [overall("chat-all", dev)]
        print(f"\n{gen.name} ({checkpoint or 'shipped'})")
        head = f"{'set':24s} {'n':>4s} {'top1':>6s} {'top5':>6s} {'ms/req':>7s}"
        print(head + ("  hit@1" if args.hit else ""))
        for ps in sets:
            top1, top5, ms = text_scores(gen, ps)
            line = f"{ps.name:24s} {len(ps.texts):4d} {top1:6.3f} {top5:6.3f} {ms:7.2f}"
            if args.hit and not ps.name.endswith("-all"):
                row, _ = evaluate_set(gen, nearest, ps, args.samples)
                line += f"  {row['hit@1']:.3f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
