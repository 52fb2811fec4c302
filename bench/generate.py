"""Generation benchmark: load time, latency for 1 and 4 images, batch-64 throughput, peak RSS, file size.

    python bench/generate.py [--checkpoint PATH] [--device cpu|cuda] [--runs 20]

Targets on 2 CPU cores: 4 images <= 1 s p50; peak RSS <= 1.5 GB. Prints numbers; asserts nothing.
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

from model.checkpoint import SHIPPED_CHECKPOINT  # noqa: E402
from model.sample import Generator  # noqa: E402

PROMPTS = ["축하해", "배고파", "pizza party", "고양이", "so sleepy lol", "비 와", "love you", "🐱 + 👑"]


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
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    t0 = time.perf_counter()
    gen = Generator.load(args.checkpoint, args.device)
    load_s = time.perf_counter() - t0
    sync = torch.cuda.synchronize if gen.device == "cuda" else (lambda: None)
    device = (
        torch.cuda.get_device_name() if gen.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    )
    path = Path(args.checkpoint) if args.checkpoint else SHIPPED_CHECKPOINT

    print(f"device: {device}; model: {gen.name}; checkpoint {path.stat().st_size / 2**20:.1f} MB")
    print(f"load: {load_s:.2f} s")
    seed = iter(range(10**6))
    for n in (1, 4):
        lat = timed(lambda n=n: gen.generate([PROMPTS[0]], n, next(seed)), args.runs, sync)
        print(
            f"{n} image(s): p50 {statistics.median(lat) * 1000:.1f} ms, "
            f"p95 {percentile(lat, 0.95) * 1000:.1f} ms"
        )
    texts = [PROMPTS[i % len(PROMPTS)] for i in range(64)]
    lat = timed(lambda: gen.generate(texts, 1, next(seed)), max(3, args.runs // 4), sync)
    print(f"batch 64: {64 / statistics.median(lat):.0f} images/s")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss:.0f} MB")


if __name__ == "__main__":
    main()
