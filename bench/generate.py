"""Generation benchmark: load time, latency for 1 and 4 images, batch-64 throughput, peak RSS, file size.

    python bench/generate.py [--checkpoint PATH ...] [--device cpu|cuda] [--runs 20]
    python bench/generate.py --checkpoint checkpoints/composer.pt  # one arch only

Without --checkpoint it measures every shipped arch in one run (v1 base.pt, v2 maskgit.pt, v3 composer.pt).

Targets on 2 CPU cores: 4 images <= 1 s p50; peak RSS <= 1.5 GB; the sticker path (learned ×4 refiner,
renditions, 4 sticker PNGs) <= 100 ms for 4 images. Prints numbers; asserts nothing.
With several checkpoints, RSS is the process's peak so far (the models share one process).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.imaging import sticker_png  # noqa: E402
from model.checkpoint import SHIPPED_CHECKPOINT  # noqa: E402
from model.imaging import from_premultiplied, renditions, resize  # noqa: E402
from model.sample import Generator, TextProbs  # noqa: E402

PROMPTS = ["축하해", "배고파", "pizza party", "고양이", "so sleepy lol", "비 와", "love you", "🐱 + 👑"]
MASHUP = "고양이 + 왕관"
TWO_CONCEPT = "파란 고양이"  # v3 draws it in one pass; v1/v2 read it as one thing
SHIPPED = ("base.pt", "maskgit.pt", "composer.pt")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(fn, runs: int, sync) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", action="append", default=None, help="repeat to compare")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    shipped = [
        str(SHIPPED_CHECKPOINT.with_name(n)) for n in SHIPPED if SHIPPED_CHECKPOINT.with_name(n).is_file()
    ]
    for checkpoint in args.checkpoint or shipped or [None]:
        bench(checkpoint, args.device, args.runs)


def bench(checkpoint: str | None, device_name: str, runs: int) -> None:
    t0 = time.perf_counter()
    gen = Generator.load(checkpoint, device_name)
    load_s = time.perf_counter() - t0
    sync = torch.cuda.synchronize if gen.device == "cuda" else (lambda: None)
    device = (
        torch.cuda.get_device_name() if gen.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    )
    path = Path(checkpoint) if checkpoint else SHIPPED_CHECKPOINT

    print(f"device: {device}; model: {gen.name}; checkpoint {path} {path.stat().st_size / 2**20:.1f} MB")
    print(f"  load: {load_s:.2f} s")
    text_side(gen, runs)
    seed = iter(range(10**6))
    for n in (1, 4):
        lat = timed(lambda n=n: gen.generate([PROMPTS[0]], n, next(seed)), runs, sync)
        print(
            f"  {n} image(s): p50 {statistics.median(lat) * 1000:.1f} ms, "
            f"p95 {percentile(lat, 0.95) * 1000:.1f} ms"
        )
    lat = timed(lambda: gen.generate([MASHUP], 4, next(seed)), max(3, runs // 2), sync)
    print(f"  4 mashup images ({MASHUP}): p50 {statistics.median(lat) * 1000:.1f} ms")
    lat = timed(lambda: gen.generate([TWO_CONCEPT], 4, next(seed)), max(3, runs // 2), sync)
    print(f"  4 two-concept images ({TWO_CONCEPT}): p50 {statistics.median(lat) * 1000:.1f} ms")
    texts = [PROMPTS[i % len(PROMPTS)] for i in range(64)]
    lat = timed(lambda: gen.generate(texts, 1, next(seed)), max(3, runs // 4), sync)
    print(f"  batch 64: {64 / statistics.median(lat):.0f} images/s")
    sticker_path(gen, runs, sync)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS so far: {rss:.0f} MB")


def text_side(gen: Generator, runs: int) -> None:
    """p(group | text) per request (model.reading's layers), a new text each time; RSS then."""
    reader = gen.reader
    layers = (
        "encoder"
        + (" + semantic" if reader and reader.semantic else "")
        + (" + rules" if reader and reader.use_rules else "")
        + (" + kiwi" if reader and reader.korean else "")
    )
    texts = iter(f"{PROMPTS[i % len(PROMPTS)]} {i}" for i in range(10**6))
    lat = timed(lambda: gen.group_probs([next(texts)]), max(runs, 50), lambda: None)
    print(
        f"  text side ({layers}): p50 {statistics.median(lat) * 1000:.1f} ms, "
        f"p95 {percentile(lat, 0.95) * 1000:.1f} ms per request; "
        f"RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB with it loaded"
    )


def sticker_path(gen: Generator, runs: int, sync) -> None:
    """What 4 sharp stickers cost on top of drawing: refine 72 -> 288, cut the sizes, encode 4 PNGs."""
    pixels = gen._draw([(PROMPTS[3], 7, k) for k in range(4)], TextProbs(gen.group_probs))
    high = gen.refine(pixels)
    large = [renditions(from_premultiplied(h))[1] for h in high]
    refine = timed(lambda: gen.refine(pixels), runs, sync)
    cut = timed(lambda: [renditions(from_premultiplied(h)) for h in high], runs, sync)
    encode = timed(lambda: [sticker_png(im) for im in large], runs, sync)
    small = [from_premultiplied(p) for p in pixels]
    old = timed(lambda: [sticker_png(resize(im, 320)) for im in small], runs, sync)
    parts = [statistics.median(t) * 1000 for t in (refine, cut, encode)]
    print(
        f"  sticker path, 4 images: refine {parts[0]:.1f} ms + renditions {parts[1]:.1f} ms + 4 PNGs "
        f"{parts[2]:.1f} ms = {sum(parts):.1f} ms (before the refiner, Lanczos + PNGs: "
        f"{statistics.median(old) * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    main()
