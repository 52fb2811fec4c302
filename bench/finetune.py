"""Server fine-tune benchmark: 50 submitted emoji → CPU time, hit@1 on the new names, base held-out drop.

    python bench/finetune.py [--base checkpoints/base.pt] [--threads 2 1] [--steps N] [--json out/ft.json]

The base data already holds every Noto emoji, so the "server's" emoji are new pictures made from them:
two emoji side by side, one with another as a badge, or one recoloured, under invented names
("party parrot", "우리팀 마스코트"). For each thread count the same fine-tune is timed on the CPU
(the bot's training process uses 1 thread). Then, with the model from the first run:
  - submitted-name hit@1: draw each name (fixed seed); a hit when the nearest image among the
    50 submitted images plus the whole base set (model.evaluate.image_features, L2) is that name's image;
  - base held-out hit@1 (model.evaluate cldr-held-out) before and after.
Targets: <= 5 min on 2 CPU cores; submitted hit@1 >= 0.9; base held-out drop <= 0.05. Prints numbers.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.data import fit_square, load_or_build  # noqa: E402
from model.evaluate import EVAL_SEED, NearestEmoji, cldr_sets, evaluate_set, image_features  # noqa: E402
from model.finetune import finetune  # noqa: E402
from model.prompt import name_key  # noqa: E402
from model.sample import Generator  # noqa: E402

log = logging.getLogger("bench.finetune")

NAMES = [
    "party parrot",
    "우리팀 마스코트",
    "sleepy cactus",
    "월요일 좀비",
    "deploy friday",
    "야근 요정",
    "coffee wizard",
    "버그 잡는 고양이",
    "rubber duck debug",
    "점심 뭐 먹지",
    "ship it squirrel",
    "회식 각",
    "merge conflict",
    "퇴근 로켓",
    "galaxy brain bagel",
    "주말 출근 펭귄",
    "build is green",
    "모니터 요정",
    "lgtm llama",
    "떡볶이 파티",
    "standup sloth",
    "우주 최강 팀장",
    "pizza on fire",
    "치킨은 진리",
    "hotfix hedgehog",
    "월급 루팡",
    "cloud goblin",
    "졸린 판다 선배",
    "404 ghost",
    "칼퇴 기원",
    "tiny boss frog",
    "새벽 감성 부엉이",
    "legacy dragon",
    "코드 리뷰 빌런",
    "spicy take",
    "단톡방 폭주",
    "async octopus",
    "행운의 네잎 떡",
    "meme lord cat",
    "출근길 지옥철",
    "yak shaving",
    "레전드 짤",
    "rainbow toaster",
    "팀장님 커피",
    "debug dino",
    "파이팅 감자",
    "gg ez",
    "소확행 케이크",
    "midnight ramen",
    "우리집 댕댕이",
]
assert len(NAMES) == 50 and len(set(NAMES)) == 50


def recolour(image: Image.Image, shift: float) -> Image.Image:
    """Rotate every pixel's hue by ``shift`` (0–1), keeping alpha."""
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255
    out = rgba.copy()
    flat = rgba[..., :3].reshape(-1, 3)
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in flat])
    hsv[:, 0] = (hsv[:, 0] + shift) % 1.0
    out[..., :3] = np.array([colorsys.hsv_to_rgb(*p) for p in hsv]).reshape(rgba.shape[:2] + (3,))
    return Image.fromarray((out * 255 + 0.5).astype(np.uint8), "RGBA")


def compose(a: Image.Image, b: Image.Image, kind: int, shift: float) -> Image.Image:
    """A new emoji-like picture from two base emoji."""
    if kind == 0:  # side by side
        canvas = Image.new("RGBA", (144, 72), (0, 0, 0, 0))
        canvas.alpha_composite(a, (0, 0))
        canvas.alpha_composite(b, (72, 0))
        return fit_square(canvas)
    if kind == 1:  # b as a badge on a
        canvas = a.copy()
        canvas.alpha_composite(b.resize((40, 40), Image.Resampling.LANCZOS), (32, 32))
        return canvas
    if kind == 2:  # recoloured and mirrored
        return recolour(a, shift).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    canvas = recolour(a, shift)  # recoloured with a small badge
    canvas.alpha_composite(b.resize((30, 30), Image.Resampling.LANCZOS), (0, 0))
    return canvas


def submitted_emoji(dataset, seed: int = 7) -> list[tuple[str, Image.Image]]:
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(dataset.images), size=(len(NAMES), 2), replace=False)
    out = []
    for i, (name, (ia, ib)) in enumerate(zip(NAMES, picks, strict=True)):
        a = Image.fromarray(dataset.images[ia], "RGBA")
        b = Image.fromarray(dataset.images[ib], "RGBA")
        out.append((name, compose(a, b, i % 4, shift=0.25 + 0.5 * rng.random())))
    return out


def submitted_hits(gen: Generator, examples, dataset, samples: int) -> dict:
    """hit@1 of each name's drawings against submitted + base images; also the text side's top-1."""
    submitted = np.stack([np.asarray(im, dtype=np.uint8) for _, im in examples])
    candidates = np.concatenate([submitted, dataset.images])
    feats = image_features(candidates)
    sq = (feats**2).sum(1)
    names = [n for n, _ in examples]
    drawn = gen.generate(names, samples, EVAL_SEED)
    arrays = np.stack([np.asarray(im) for per in drawn for im in per])
    nearest = (sq[None, :] - 2 * image_features(arrays) @ feats.T).argmin(1).reshape(len(names), samples)
    hits = nearest == np.arange(len(names))[:, None]
    custom = {f"custom:{name_key(n)}": i for i, n in enumerate(names)}
    groups = gen.meta.groups
    text_top1 = np.mean(
        [custom.get(groups[int(g)]) == i for i, g in enumerate(gen.group_probs(names).argmax(-1).tolist())]
    )
    misses = [names[i] for i in range(len(names)) if not hits[i].all()]
    return {"hit@1": float(hits.mean()), "text_top1": float(text_top1), "misses": misses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default=None, help="base checkpoint (default: the shipped one)")
    parser.add_argument("--data", default="data/dataset.npz", help="dataset cache (built if missing)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="CPU thread counts to time")
    parser.add_argument("--steps", type=int, default=None, help="default: automatic (as the bot)")
    parser.add_argument("--names", type=int, default=50, help="how many submitted emoji (at most 50)")
    parser.add_argument("--samples", type=int, default=4, help="drawings per name / per prompt")
    parser.add_argument("--limit", type=int, default=300, help="base held-out prompts")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    dataset = load_or_build(Path(args.data))
    examples = submitted_emoji(dataset)[: args.names]
    report: dict = {"names": len(examples), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        outs = []
        for threads in args.threads:
            torch.set_num_threads(threads)
            out = Path(tmp) / f"ft_{threads}.pt"
            started = time.perf_counter()
            result = finetune(examples, out, base=args.base, steps=args.steps, device="cpu", label="bench")
            wall = time.perf_counter() - started
            report["runs"].append({"threads": threads, "steps": result["steps"], "seconds": round(wall, 1)})
            log.info(
                "%d thread(s): %d steps in %.1f s (loss %.3f)", threads, result["steps"], wall, result["loss"]
            )
            outs.append(out)

        torch.set_num_threads(max(args.threads))
        held = next(ps for ps in cldr_sets(dataset, args.limit) if ps.name == "cldr-held-out")
        nearest = NearestEmoji(dataset)
        before, _ = evaluate_set(Generator.load(args.base, "cpu"), nearest, held, args.samples)
        tuned = Generator.load(outs[0], "cpu")
        after, _ = evaluate_set(tuned, nearest, held, args.samples)
        report["submitted"] = submitted_hits(tuned, examples, dataset, args.samples)
    report["base_held_out"] = {"before": before["hit@1"], "after": after["hit@1"]}
    drop = before["hit@1"] - after["hit@1"]
    two = next((r for r in report["runs"] if r["threads"] == 2), None)
    report["targets"] = {
        "2 threads <= 300 s": None if two is None else two["seconds"] <= 300,
        "submitted hit@1 >= 0.9": report["submitted"]["hit@1"] >= 0.9,
        "held-out drop <= 0.05": drop <= 0.05,
    }

    print(f"\n{len(examples)} submitted emoji, {args.samples} samples each, seed {EVAL_SEED}")
    for run in report["runs"]:
        print(
            f"  fine-tune on CPU, {run['threads']} thread(s): {run['steps']} steps in {run['seconds']:.1f} s"
        )
    sub = report["submitted"]
    print(f"  submitted names: hit@1 {sub['hit@1']:.3f}, text top-1 {sub['text_top1']:.3f}")
    if sub["misses"]:
        print(f"    missed (some samples): {', '.join(sub['misses'][:12])}")
    print(f"  base held-out hit@1: {before['hit@1']:.3f} -> {after['hit@1']:.3f} (drop {drop:+.3f})")
    for target, ok in report["targets"].items():
        print(f"  {'PASS' if ok else 'n/a ' if ok is None else 'MISS'} {target}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
