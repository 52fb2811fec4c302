"""Many trained servers: bot start-up, memory and a cold server's first /emoji, with server models as
deltas over the base loaded on demand into a bounded LRU.

    python bench/servers.py [--servers 1000] [--touch 100] [--cache 32] [--steps 10] [--threads 2]

1. One real fine-tune of the shipped base on the 50 emoji of bench/finetune.py (a few steps: a delta's
   size does not depend on the steps) gives a real server model; it is copied to `--servers` servers, each
   copy's tuned tensors perturbed a little (so every file is its own), and recorded in a real store as
   each server's last successful run.
2. A fresh process starts the real bot (create_bot in SimCord, the real model loader) on that data dir:
   start-up is timed from the process's start (imports, base model, stores, commands) and from
   create_bot; no server model may be loaded by then.
3. /emoji once in each of `--touch` servers, one after another (each a cold server: its model loads in
   the worker thread): latency p50/p95 from the interaction to its image, and the load alone. Then RSS
   (and its peak) with the LRU of `--cache`, and every delta file's size.
Targets (2 CPU cores): start-up <= 10 s, RSS <= 2 GB, cold first /emoji <= 1 s, deltas <= 2 MB. Prints
numbers; it is not a test.
"""

from __future__ import annotations

import time

PROCESS_STARTED = time.perf_counter()  # before the imports: start-up counts them

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench.servers")
TEXT = "party parrot"  # one of the fine-tuned names


def rss_mb() -> tuple[float, float]:
    """(resident set now, its peak) in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------------------------------------- 1. data


def make_servers(data_dir: Path, servers: int, steps: int, threads: int) -> dict:
    """A data dir with `servers` trained servers; returns the fine-tune's numbers."""
    import torch

    from bench.finetune import submitted_emoji
    from bot.store import RunStatus, SubmissionStore
    from model.checkpoint import write_atomically
    from model.data import load_or_build
    from model.finetune import finetune

    torch.set_num_threads(threads)
    examples = submitted_emoji(load_or_build(ROOT / "data" / "dataset.npz"))
    template = data_dir / "template.pt"
    started = time.perf_counter()
    result = finetune(examples, template, steps=steps, device="cpu", label="server run")
    log.info(
        "fine-tuned %d names in %d steps (%.0f s)", result["names"], steps, time.perf_counter() - started
    )
    delta = torch.load(template, weights_only=True)
    store = SubmissionStore(data_dir).open()
    rng = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for i in range(servers):
        guild_id = 10**17 + i
        run = store.start_run(guild_id, 42, submissions=len(examples), total_steps=steps)
        copy = dict(delta, whole=dict(delta["whole"]))
        for key, value in delta["whole"].items():  # each server its own weights
            noise = torch.randn(value.shape, generator=rng) * 1e-3
            copy["whole"][key] = (value.float() + noise).to(value.dtype)
        copy["meta"] = dict(delta["meta"], label=f"server run {run.id}")
        write_atomically(store.checkpoint_path(guild_id, run.id), copy)
        store.finish_run(run.id, RunStatus.SUCCEEDED, steps=steps)
    store.close()
    template.unlink()
    log.info("wrote %d servers in %.0f s", servers, time.perf_counter() - started)
    return {"names": result["names"], "steps": steps}


# --------------------------------------------------------------------------------------------- 2-3. bot


async def serve(data_dir: Path, touch: int, cache: int) -> dict:
    import simcord

    from bot.app import create_bot
    from bot.config import Config
    from bot.store import SubmissionStore

    store = SubmissionStore(data_dir).open()
    guild_ids = sorted(store.models())[:touch]
    store.close()
    config = Config(data_dir=data_dir, device="cpu", user_cooldown_s=0.0, guild_model_cache=cache)
    created = time.perf_counter()
    instance = create_bot(config)
    models = instance.guild_models
    load_s: list[float] = []
    load_cpu_s: list[float] = []  # the loading thread's own CPU time: what a load costs without contention
    open_model = models.open

    def timed_open(path):
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return open_model(path)
        finally:
            load_s.append(time.perf_counter() - started)
            load_cpu_s.append(time.thread_time() - cpu)

    models.open = timed_open
    report: dict = {}
    try:
        async with simcord.run(instance, settle_timeout=600) as env:
            ready = time.perf_counter()
            report["startup_s"] = round(ready - PROCESS_STARTED, 2)
            report["startup_from_create_bot_s"] = round(ready - created, 2)
            report["startup_cpu_s"] = round(time.process_time(), 2)  # all threads, since the process began
            report["loaded_at_startup"] = len(models.loaded())
            report["servers_on_disk"] = len(models.store.models())
            report["rss_after_startup_mb"] = round(rss_mb()[0])
            latencies = []
            for i, guild_id in enumerate(guild_ids):
                guild = env.create_guild(f"server {i}", id=guild_id)
                member = guild.add_member(env.create_user(f"user {i}"))
                channel = guild.create_text_channel("general")
                started = time.perf_counter()
                result = await member.slash(channel, "emoji", text=TEXT, seed=i)
                latencies.append(time.perf_counter() - started)
                model = next(f.value for f in result.response.embeds[0].fields if f.name == "Model")
                if "server run" not in model:
                    raise SystemExit(f"server {guild_id} was not drawn by its own model ({model})")
            now, peak = rss_mb()
    finally:
        instance.worker.stop()
        instance.worker.join(10)
    report.update(
        touched=len(latencies),
        cold_emoji_p50_s=round(statistics.median(latencies), 3),
        cold_emoji_p95_s=round(pct(latencies, 0.95), 3),
        cold_emoji_max_s=round(max(latencies), 3),
        load_p50_s=round(statistics.median(load_s), 3),
        load_p95_s=round(pct(load_s, 0.95), 3),
        load_cpu_p50_s=round(statistics.median(load_cpu_s), 3),
        load_cpu_p95_s=round(pct(load_cpu_s, 0.95), 3),
        load_average=Path("/proc/loadavg").read_text().split()[0],
        loaded_after=len(models.loaded()),
        rss_mb=round(now),
        rss_peak_mb=round(peak),
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--touch", type=int, default=100, help="servers that each get one /emoji")
    parser.add_argument("--cache", type=int, default=32, help="guild_model_cache")
    parser.add_argument("--steps", type=int, default=10, help="fine-tune steps of the template delta")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the fine-tune")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the servers here (default: temp)")
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)  # phase 2-3 process
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    if args.serve:
        print(json.dumps(asyncio.run(serve(args.serve, args.touch, args.cache))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        report = {"servers": args.servers, "cache": args.cache}
        report.update(make_servers(data_dir, args.servers, args.steps, args.threads))
        sizes = [p.stat().st_size for p in (data_dir / "guild_models").rglob("*.pt")]
        report.update(delta_files=len(sizes), delta_mb_max=round(max(sizes) / 2**20, 3))
        report["delta_mb_total"] = round(sum(sizes) / 2**20, 1)
        command = [sys.executable, __file__, "--serve", str(data_dir)]
        command += ["--touch", str(args.touch), "--cache", str(args.cache)]
        served = subprocess.run(command, capture_output=True, text=True, check=False)
        if served.returncode != 0:
            raise SystemExit(f"the bot process failed:\n{served.stderr[-4000:]}")
        report.update(json.loads(served.stdout.strip().splitlines()[-1]))

    r = report
    print(f"\n{r['servers']} trained servers ({r['names']} emoji each), guild_model_cache {args.cache}")
    print(
        f"  delta files: {r['delta_files']}, largest {r['delta_mb_max']:.2f} MB, all {r['delta_mb_total']} MB"
    )
    print(
        f"  start-up: {r['startup_s']:.2f} s from process start "
        f"({r['startup_from_create_bot_s']:.2f} s from create_bot), "
        f"{r['loaded_at_startup']} server models loaded, RSS {r['rss_after_startup_mb']} MB; "
        f"CPU {r['startup_cpu_s']:.2f} s"
    )
    print(
        f"  cold first /emoji in {r['touched']} servers: p50 {r['cold_emoji_p50_s'] * 1000:.0f} ms, "
        f"p95 {r['cold_emoji_p95_s'] * 1000:.0f} ms, max {r['cold_emoji_max_s'] * 1000:.0f} ms "
        f"(its model's load: p50 {r['load_p50_s'] * 1000:.0f} ms, p95 {r['load_p95_s'] * 1000:.0f} ms; "
        f"its CPU time p50 {r['load_cpu_p50_s'] * 1000:.0f} ms, p95 {r['load_cpu_p95_s'] * 1000:.0f} ms)"
    )
    print(f"  load average at the end: {r['load_average']} (timings are wall clock on a shared machine)")
    print(f"  RSS after: {r['rss_mb']} MB (peak {r['rss_peak_mb']} MB), {r['loaded_after']} models loaded")
    targets = {
        "start-up <= 10 s": report["startup_s"] <= 10,
        "RSS <= 2 GB": report["rss_peak_mb"] <= 2048,
        "cold first /emoji p95 <= 1 s": report["cold_emoji_p95_s"] <= 1,
        "delta files <= 2 MB": report["delta_mb_max"] <= 2,
    }
    for target, ok in targets.items():
        print(f"  {'PASS' if ok else 'MISS'} {target}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
