"""Load benchmark for the bot side: many concurrent /emoji requests through the GenerationWorker, and
through SimCord (the real bot, discord.py's parsers and HTTP layer, in-memory Discord).

    python bench/bot_load.py                     # 200 and 1,000 requests
    python bench/bot_load.py --requests 200 --no-simcord
    python bench/bot_load.py --requests 1000 --backend thread arq --replicas 1 2

``--backend arq`` also runs the distributed backend: a redis-server and N `emoji-bot replica` processes
on loopback (tests/cluster.py), started and stopped here, for each ``--replicas`` count; it reports the
cluster's start-up time and each replica's memory, then the same runs next to the in-process worker's.

Reports time to acknowledge (SimCord: the defer), time to image p50/p95, images/s, event-loop lag
(a 5 ms ticker task; p99 and max), requests lost (must be 0) and the throughput of batching
(max_batch) over one request per model call. Prints numbers; it is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import setup_logging  # noqa: E402
from bot.backend import GenerationBackend  # noqa: E402
from bot.config import BackendConfig  # noqa: E402
from bot.results import ResultRecord  # noqa: E402
from bot.views import Result, render_files  # noqa: E402
from bot.worker import GenerationWorker  # noqa: E402

PROMPTS = [
    "축하해",
    "고양이",
    "배고파",
    "party cat",
    "so tired",
    "생일 축하해",
    "pizza",
    "사랑해",
    "rain",
    "졸려",
]
TICK_S = 0.005


@dataclass
class Run:
    label: str
    requests: int
    wall_s: float = 0.0
    images: int = 0
    ack_s: list[float] = field(default_factory=list)
    image_s: list[float] = field(default_factory=list)
    lags_s: list[float] = field(default_factory=list)
    lost: int = 0

    def report(self) -> str:
        def pct(values: list[float], q: float) -> float:
            if not values:
                return float("nan")
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

        ack = (
            f"ack p50 {pct(self.ack_s, 0.5):7.1f} ms p95 {pct(self.ack_s, 0.95):7.1f} ms | "
            if self.ack_s
            else ""
        )
        return (
            f"{self.label:<34} n={self.requests:<5} {ack}"
            f"image p50 {pct(self.image_s, 0.5):7.0f} ms p95 {pct(self.image_s, 0.95):7.0f} ms | "
            f"{self.images / self.wall_s:6.1f} img/s | loop lag p99 {pct(self.lags_s, 0.99):5.1f} ms "
            f"max {pct(self.lags_s, 1.0):5.1f} ms | lost {self.lost}"
        )

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_s


async def ticker(lags: list[float], stop: asyncio.Event) -> None:
    """How late the event loop wakes a 5 ms sleeper: the lag every other handler would feel."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(TICK_S)
        lags.append(max(0.0, loop.time() - before - TICK_S))


async def bench_worker(
    generator,
    n: int,
    max_batch: int,
    *,
    render: bool = True,
    backend: GenerationBackend | None = None,
    label="",
) -> Run:
    """N concurrent requests straight into the worker (or ``backend``); with ``render`` each becomes PNGs
    as in the bot."""
    run = Run(f"{label or 'worker'}{'+png' if render else ''} max_batch={max_batch}", n)
    worker = backend or GenerationWorker(
        lambda: generator, max_queue=n, max_batch=max_batch, batch_wait_ms=15
    )
    await worker.start()
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(run.lags_s, stop))

    async def one(i: int) -> bool:
        started = time.perf_counter()
        text = PROMPTS[i % len(PROMPTS)]
        generation = await worker.submit(text, 1, i).future
        record = ResultRecord(i + 1, None, 0, text, i, 1, False, generation.model_name)
        result = Result(record, generation.drawing)
        files = await asyncio.to_thread(render_files, result) if render else [("-", b"-")]
        run.image_s.append(time.perf_counter() - started)
        run.images += len(generation.images)
        return bool(files)

    started = time.perf_counter()
    done = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    run.wall_s = time.perf_counter() - started
    run.lost = sum(1 for ok in done if ok is not True)
    stop.set()
    await tick
    await worker.close()
    return run


async def bench_simcord(
    generator, n: int, max_batch: int, backend: BackendConfig | None = None, label: str = "simcord"
) -> Run:
    """N /emoji interactions delivered at once to the real bot in SimCord, then settled together; with
    ``backend`` the bot draws through that backend (the replicas) instead of its worker thread."""
    import discord
    import simcord
    from simcord import interactions as sim_interactions
    from simcord.enums import AppCommandType, InteractionType

    from bot.app import create_bot
    from bot.config import Config

    run = Run(f"{label} max_batch={max_batch}", n)
    acked: dict[int, float] = {}
    imaged: dict[int, float] = {}
    originals = (discord.InteractionResponse.defer, discord.Interaction.edit_original_response)

    async def defer(self, **kwargs):
        acked[self._parent.id] = time.perf_counter()
        return await originals[0](self, **kwargs)

    async def edit(self, **kwargs):
        message = await originals[1](self, **kwargs)
        if kwargs.get("attachments"):
            imaged[self.id] = time.perf_counter()
        return message

    discord.InteractionResponse.defer, discord.Interaction.edit_original_response = defer, edit
    config = Config(max_queue=n, max_batch=max_batch, batch_wait_ms=15, user_cooldown_s=0, device="cpu")
    if backend is not None:
        config = replace(config, backend=backend)
    instance = create_bot(config, load=lambda checkpoint: generator)  # the loaded model; the bot is real
    try:
        async with simcord.run(instance, settle_timeout=600) as env:
            guild = env.create_guild()
            channel = guild.create_text_channel("general")
            members = [guild.add_member(env.create_user(f"user{i}")) for i in range(20)]
            root = env.backend.find_command("emoji", guild.id, type=AppCommandType.CHAT_INPUT)
            stop = asyncio.Event()
            tick = asyncio.create_task(ticker(run.lags_s, stop))
            sent: dict[int, float] = {}
            records = []
            started = time.perf_counter()
            for i in range(n):
                data = {
                    "id": root["id"],
                    "name": "emoji",
                    "type": AppCommandType.CHAT_INPUT,
                    "options": [
                        {"name": "text", "type": 3, "value": PROMPTS[i % len(PROMPTS)]},
                        {"name": "seed", "type": 4, "value": i},
                    ],
                }
                record, payload = sim_interactions.base_payload(
                    env.backend,
                    type=InteractionType.APPLICATION_COMMAND,
                    channel_id=channel.id,
                    guild_id=guild.id,
                    user_id=members[i % len(members)].id,
                    data=data,
                )
                sent[record.id] = time.perf_counter()
                records.append(record)
                env.backend.emit("INTERACTION_CREATE", payload)
                await asyncio.sleep(0)  # let the ticker see the loop between arrivals
            await env.settle(timeout=600)
            run.wall_s = time.perf_counter() - started
            stop.set()
            await tick
            for record in records:
                result = simcord.InteractionResult(env, record)
                message = result.response
                if record.id in acked:
                    run.ack_s.append(acked[record.id] - sent[record.id])
                if record.id in imaged and message is not None and message.attachments:
                    run.image_s.append(imaged[record.id] - sent[record.id])
                    run.images += 1
                else:
                    run.lost += 1
    finally:
        discord.InteractionResponse.defer, discord.Interaction.edit_original_response = originals
        instance.worker.stop()
        instance.worker.join(10)
    return run


async def main_async(args: argparse.Namespace) -> None:
    from model import Generator

    generator = Generator.load(args.checkpoint, device=args.device)
    print(f"model: {generator.name} on {generator.device}; load average {os.getloadavg()[0]:.1f}")
    summary: list[Run] = []
    for n in args.requests:
        if "thread" in args.backend:
            for render in (False, True):
                batched = await bench_worker(generator, n, args.max_batch, render=render)
                single = await bench_worker(generator, n, 1, render=render)
                print(batched.report())
                print(single.report())
                print(f"{'':<34} batching gain: {batched.images_per_s / single.images_per_s:.2f}x images/s")
                summary += [batched] if not render else []
            if not args.no_simcord:
                run = await bench_simcord(generator, n, args.max_batch)
                print(run.report())
                summary.append(run)
        if "arq" in args.backend:
            for replicas in args.replicas:
                summary += await bench_cluster(generator, n, args, replicas)
    if len(summary) > 1:
        print("\nside by side (images/s, lost):")
        for run in summary:
            print(f"  {run.label:<40} n={run.requests:<5} {run.images_per_s:6.1f} img/s  lost {run.lost}")


async def bench_cluster(generator, n: int, args: argparse.Namespace, replicas: int) -> list[Run]:
    """The distributed backend with ``replicas`` replicas on loopback: direct and through SimCord."""
    from bot.remote import RemoteBackend
    from tests.cluster import LocalCluster, rss_mib

    threads = max(1, (os.cpu_count() or 1) // replicas)  # the cores shared out, as one would deploy
    runs = []
    with (
        tempfile.TemporaryDirectory() as folder,
        LocalCluster(
            Path(folder),
            replicas=replicas,
            threads=threads,
            max_batch=args.max_batch,
            replica_jobs=2 * args.max_batch,
            job_timeout_s=120,
        ) as cluster,
    ):
        memory = ", ".join(f"{rss_mib(p.pid):.0f}" for p in cluster.replicas)
        print(
            f"arq: {replicas} replica(s) x {threads} torch thread(s) up in {cluster.started_s:.1f} s "
            f"(redis-server + replicas announcing); replica RSS {memory} MiB, redis-server "
            f"{rss_mib(cluster.redis.pid):.0f} MiB"
        )
        label = f"arq {replicas} replica{'s' if replicas > 1 else ''}"
        backend = RemoteBackend(cluster.settings, max_queue=n, max_batch=args.max_batch)
        run = await bench_worker(generator, n, args.max_batch, render=False, backend=backend, label=label)
        print(run.report())
        runs.append(run)
        if not args.no_simcord:
            run = await bench_simcord(generator, n, args.max_batch, cluster.settings, f"simcord {label}")
            print(run.report())
            runs.append(run)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[200, 1000], help="concurrent requests")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--checkpoint", default=None, help="default: the shipped checkpoints/base.pt")
    parser.add_argument("--no-simcord", action="store_true", help="only the worker benchmark")
    parser.add_argument(
        "--backend",
        nargs="+",
        choices=["thread", "arq"],
        default=["thread"],
        help="what draws (arq: replicas)",
    )
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2], help="arq: replica counts to run")
    args = parser.parse_args()
    setup_logging("WARNING")  # the bot's own set-up: discord.py's voice and intents noise filtered
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
