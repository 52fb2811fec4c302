"""Regenerate the README's grids: 16 everyday prompts and 12 mashups (Korean and English), 4 fixed seeds each,
and 12 two-concept prompts from every generator side by side.

python scripts/readme_grid.py [--checkpoint PATH] [--out docs/samples.png] [--mashups docs/mashups.png]
python scripts/readme_grid.py --two-concept checkpoints/base.pt checkpoints/maskgit.pt checkpoints/composer.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageDraw  # noqa: E402

from model.evaluate import caption_font, sample_grid  # noqa: E402
from model.sample import Generator  # noqa: E402

PROMPTS = [
    "축하해",
    "배고파",
    "졸려",
    "ㅋㅋㅋ",
    "ㅠㅠ",
    "사랑해",
    "비 와",
    "고양이",
    "congrats",
    "lol",
    "pizza party",
    "so tired",
    "good morning",
    "rocket",
    "생일 축하해",
    "thank you",
]
MASHUPS = [
    "고양이 + 왕관",
    "🐱👑",
    "crying pizza",
    "피자 + ㅠㅠ",
    "🍕😭",
    "ghost + sunglasses",
    "하트 + 🔥",
    "🤖❤️",
    "sick robot",
    "donut + fire",
    "개구리 + 왕관",
    "🦄🌈",
]

# a thing and something said about it, none of them a held-out evaluation pair or a README mashup above
TWO_CONCEPTS = [
    "파란 고양이",
    "crying pizza",
    "왕관 쓴 강아지",
    "sleepy avocado",
    "분홍 자동차",
    "우는 구름",
    "rabbit with a top hat",
    "졸린 도넛",
    "green penguin",
    "화난 선인장",
    "리본 단 곰",
    "cool banana",
]


def side_by_side(prompts: list[str], checkpoints: list[str], seed: int) -> Image.Image:
    """One grid per checkpoint, left to right, each headed by its model's name."""
    grids, names = [], []
    for path in checkpoints:
        gen = Generator.load(path, "cpu")
        grids.append(sample_grid(prompts, gen.generate(prompts, count=4, seed=seed)))
        names.append(gen.name)
    both = Image.new("RGB", (sum(g.width for g in grids), grids[0].height + 24), "white")
    draw, x = ImageDraw.Draw(both), 0
    for grid, name in zip(grids, names, strict=True):
        both.paste(grid, (x, 24))
        draw.text((x + 150, 4), name, fill="black", font=caption_font(14))
        x += grid.width
    return both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", default="docs/samples.png")
    parser.add_argument("--mashups", default="docs/mashups.png")
    parser.add_argument(
        "--compare", default=None, help="a second checkpoint: also write its grid beside the first"
    )
    parser.add_argument("--compare-out", default="docs/v1_vs_v2.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--two-concept",
        nargs="+",
        default=None,
        metavar="CKPT",
        help="only the two-concept grid, these models",
    )
    parser.add_argument("--two-concept-out", default="docs/two_concepts.png")
    args = parser.parse_args()
    if args.two_concept:
        side_by_side(TWO_CONCEPTS, args.two_concept, args.seed).save(args.two_concept_out)
        print(f"wrote {args.two_concept_out}")
        return
    gen = Generator.load(args.checkpoint, "cpu")
    images = gen.generate(PROMPTS, count=4, seed=args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sample_grid(PROMPTS, images).save(args.out)
    print(f"wrote {args.out}")
    sample_grid(MASHUPS, gen.generate(MASHUPS, count=4, seed=args.seed)).save(args.mashups)
    print(f"wrote {args.mashups}")
    if args.compare:
        side_by_side(PROMPTS, [args.checkpoint, args.compare], args.seed).save(args.compare_out)
        print(f"wrote {args.compare_out}")


if __name__ == "__main__":
    main()
