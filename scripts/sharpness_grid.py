"""The README's sharpness grid: per prompt, the real emoji beside ours, at 320 px (sticker) and at 72 px.

python scripts/sharpness_grid.py [--checkpoint PATH ...] [--out docs/sharpness.png] [--seed 3]

"Real" is the nearest real emoji of the first checkpoint's drawing (what `emoji-train eval` compares its
detail against), rendered from the font's 136-px bitmap: at 320 px for the sticker column, the dataset's 72-px
image for the emoji column. Each further checkpoint adds its own columns.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from model.data import find_font, load_or_build, render_emoji  # noqa: E402
from model.evaluate import NearestEmoji, caption_font, draw_label  # noqa: E402
from model.sample import Generator  # noqa: E402

PROMPTS = ["축하해", "고양이", "pizza party", "ㅠㅠ", "rocket", "sos"]
PAD, LABEL_W, HEAD_H = 8, 120, 28


def checker(size: int) -> Image.Image:
    """Light checkerboard, so transparency shows."""
    tile = Image.new("RGB", (size, size), (235, 235, 235))
    draw = ImageDraw.Draw(tile)
    step = max(8, size // 20)
    for y in range(0, size, step):
        for x in range((y // step) % 2 * step, size, 2 * step):
            draw.rectangle([x, y, x + step - 1, y + step - 1], fill=(250, 250, 250))
    return tile


def on_checker(image: Image.Image) -> Image.Image:
    tile = checker(image.width)
    tile.paste(image, (0, 0), image)
    return tile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", action="append", default=None, help="repeat to add columns")
    parser.add_argument("--out", default="docs/sharpness.png")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--data", default="data/dataset.npz")
    args = parser.parse_args()

    generators = [Generator.load(c, "cpu") for c in args.checkpoint or [None]]
    dataset = load_or_build(Path(args.data))
    nearest = NearestEmoji(dataset)
    font = ImageFont.truetype(str(find_font()), 109)
    drawings = [g.draw([(p, 1, args.seed) for p in PROMPTS]) for g in generators]
    real_idx = nearest.indices(np.stack([np.asarray(d.images[0]) for d in drawings[0]]))

    heads = (
        ["real 320"]
        + [f"{g.arch} 320" for g in generators]
        + ["real 72"]
        + [f"{g.arch} 72" for g in generators]
    )
    sizes = [320] * (1 + len(generators)) + [72] * (1 + len(generators))
    width = LABEL_W + sum(s + PAD for s in sizes) + PAD
    height = HEAD_H + len(PROMPTS) * (320 + PAD) + PAD
    canvas = Image.new("RGB", (width, height), "white")
    font_small = caption_font(15)
    x = LABEL_W
    for head, size in zip(heads, sizes, strict=True):
        draw_label(canvas, (x, 6), head, font_small)
        x += size + PAD
    for row, prompt in enumerate(PROMPTS):
        top = HEAD_H + row * (320 + PAD)
        draw_label(canvas, (8, top + 150), prompt, font_small)
        real_emoji = dataset.emojis[int(real_idx[row])]
        cells = [render_emoji(font, real_emoji, 320)] + [d[row].large[0] for d in drawings]
        cells += [Image.fromarray(dataset.images[int(real_idx[row])])] + [d[row].images[0] for d in drawings]
        x = LABEL_W
        for cell, size in zip(cells, sizes, strict=True):
            canvas.paste(on_checker(cell), (x, top + (320 - size) // 2))
            x += size + PAD
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out, optimize=True)
    print(f"wrote {args.out} ({', '.join(g.name for g in generators)}; seed {args.seed})")


if __name__ == "__main__":
    main()
