"""Regenerate the README's grids: 16 everyday prompts and 12 mashups (Korean and English), 4 fixed seeds each.

python scripts/readme_grid.py [--checkpoint PATH] [--out docs/samples.png] [--mashups docs/mashups.png]
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
    args = parser.parse_args()
    gen = Generator.load(args.checkpoint, "cpu")
    images = gen.generate(PROMPTS, count=4, seed=args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sample_grid(PROMPTS, images).save(args.out)
    print(f"wrote {args.out}")
    sample_grid(MASHUPS, gen.generate(MASHUPS, count=4, seed=args.seed)).save(args.mashups)
    print(f"wrote {args.mashups}")
    if args.compare:
        other = Generator.load(args.compare, "cpu")
        left = sample_grid(PROMPTS, images)
        right = sample_grid(PROMPTS, other.generate(PROMPTS, count=4, seed=args.seed))
        both = Image.new("RGB", (left.width + right.width, left.height + 24), "white")
        both.paste(left, (0, 24))
        both.paste(right, (left.width, 24))
        draw = ImageDraw.Draw(both)
        for x, name in ((0, gen.name), (left.width, other.name)):
            draw.text((x + 150, 4), name, fill="black", font=caption_font(14))
        both.save(args.compare_out)
        print(f"wrote {args.compare_out}")


if __name__ == "__main__":
    main()
