"""Load benchmark for the bot side: many concurrent /emoji requests through the GenerationWorker, and
through SimCord (the real bot, discord.py's parsers and HTTP layer, in-memory Discord).

    python bench/bot_load.py                     # 200 and 1,000 requests
    python bench/bot_load.py --requests 200 --no-simcord

Reports time to acknowledge (SimCord: the defer), time to image p50/p95, images/s, event-loop lag
(a 5 ms ticker task; p99 and max), requests lost (must be 0) and the throughput of batching
(max_batch) over one request per model call. Prints numbers; it is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import setup_logging  # noqa: E402
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


async def bench_worker(generator, n: int, max_batch: int, *, render: bool = True) -> Run:
    """N concurrent requests straight into the worker; with ``render`` each becomes PNGs as in the bot."""
    run = Run(f"worker{'+png' if render else ''} max_batch={max_batch}", n)
    worker = GenerationWorker(lambda: generator, max_queue=n, max_batch=max_batch, batch_wait_ms=15)
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


async def bench_simcord(generator, n: int, max_batch: int) -> Run:
    """N /emoji interactions delivered at once to the real bot in SimCord, then settled together."""
    import discord
    import simcord
    from simcord import interactions as sim_interactions
    from simcord.enums import AppCommandType, InteractionType

    from bot.app import create_bot
    from bot.config import Config

    run = Run(f"simcord max_batch={max_batch}", n)
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
    print(f"model: {generator.name} on {generator.device}")
    for n in args.requests:
        for render in (False, True):
            batched = await bench_worker(generator, n, args.max_batch, render=render)
            single = await bench_worker(generator, n, 1, render=render)
            print(batched.report())
            print(single.report())
            print(f"{'':<34} batching gain: {batched.images_per_s / single.images_per_s:.2f}x images/s")
        if not args.no_simcord:
            print((await bench_simcord(generator, n, args.max_batch)).report())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[200, 1000], help="concurrent requests")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--checkpoint", default=None, help="default: the shipped checkpoints/base.pt")
    parser.add_argument("--no-simcord", action="store_true", help="only the worker benchmark")
    args = parser.parse_args()
    setup_logging("WARNING")  # the bot's own set-up: discord.py's voice and intents noise filtered
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
