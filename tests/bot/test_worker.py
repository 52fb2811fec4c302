"""GenerationWorker unit tests with a fake generator: batching, ordering, isolation, deadlines, shutdown.

These run a real thread and a real event loop; only the model is replaced (the worker's contract
with it is ``GeneratorLike``: ``name``, ``device``, ``clean_text`` and ``draw``).
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from PIL import Image

from bot.worker import DeadlineExceeded, GenerationFailed, GenerationWorker, QueueFull, WorkerStopped
from model import Drawing
from tests.support import BASE_CHECKPOINT

pytestmark = pytest.mark.asyncio


class FakeGenerator:
    """Records each draw call; images encode (text, index) so results can be matched to requests."""

    def __init__(self, name: str = "fake", *, fail_on: str | None = None) -> None:
        self.name = name
        self.device = "cpu"
        self.calls: list[list[tuple[str, int, int]]] = []
        self.fail_on = fail_on
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def clean_text(self, text: str) -> str:
        if not text.strip():
            raise ValueError("empty")
        return text.strip()

    def draw(self, jobs):
        self.entered.set()
        self.gate.wait(10)
        self.calls.append(list(jobs))
        if self.fail_on is not None and any(text == self.fail_on for text, _, _ in jobs):
            raise RuntimeError(f"model exploded on {self.fail_on!r}")
        images = [[self.image(text, seed, i) for i in range(count)] for text, count, seed in jobs]
        return [Drawing(row, "🎉", None) for row in images]

    @staticmethod
    def image(text: str, seed: int, index: int) -> Image.Image:
        image = Image.new("RGBA", (72, 72), (seed % 256, index, 0, 255))
        image.info["text"] = text
        return image


async def started(generator: FakeGenerator, **options) -> GenerationWorker:
    worker = GenerationWorker(lambda: generator, **options)
    await worker.start()
    return worker


async def test_concurrent_requests_are_batched_and_results_match_their_requests():
    generator = FakeGenerator()
    generator.gate.clear()  # hold the first batch so the rest pile up
    worker = await started(generator, max_batch=4, batch_wait_ms=50)
    try:
        tickets = [worker.submit(f"t{i}", 1 + i % 3, i) for i in range(9)]
        await asyncio.to_thread(generator.entered.wait, 5)
        generator.gate.set()
        results = await asyncio.gather(*(t.future for t in tickets))
    finally:
        await worker.close()

    for i, result in enumerate(results):
        assert [image.info["text"] for image in result.images] == [f"t{i}"] * (1 + i % 3)
        assert result.model_name == "fake" and result.drawing.tag == "🎉"
    sizes = [len(call) for call in generator.calls]
    assert max(sizes) == 4 and sum(sizes) == 9  # batched, and never more than max_batch
    order = [text for call in generator.calls for text, _, _ in call]
    assert order == [f"t{i}" for i in range(9)]  # first come, first served


async def test_max_batch_one_runs_one_request_per_call():
    generator = FakeGenerator()
    worker = await started(generator, max_batch=1, batch_wait_ms=0)
    try:
        await asyncio.gather(*(worker.submit(f"t{i}", 1, i).future for i in range(5)))
    finally:
        await worker.close()
    assert [len(call) for call in generator.calls] == [1] * 5


async def test_a_failing_request_does_not_fail_its_batch_mates():
    generator = FakeGenerator(fail_on="bad")
    generator.gate.clear()
    worker = await started(generator, max_batch=8, batch_wait_ms=50)
    try:
        tickets = [worker.submit(text, 1, 0) for text in ("hold", "a", "bad", "b")]
        await asyncio.to_thread(generator.entered.wait, 5)
        generator.gate.set()
        results = await asyncio.gather(*(t.future for t in tickets), return_exceptions=True)
        assert [type(r).__name__ for r in results] == [
            "Generation",
            "Generation",
            "GenerationFailed",
            "Generation",
        ]
        assert isinstance(results[2], GenerationFailed)
        # and the worker keeps serving
        assert (await worker.submit("after", 1, 0).future).images
    finally:
        await worker.close()


async def test_queue_is_bounded_and_counts_running_requests():
    generator = FakeGenerator()
    generator.gate.clear()
    worker = await started(generator, max_queue=2, max_batch=1, batch_wait_ms=0)
    try:
        first = worker.submit("a", 1, 0)
        second = worker.submit("b", 1, 0)
        assert second.ahead == 1
        with pytest.raises(QueueFull) as info:
            worker.submit("c", 1, 0)
        assert info.value.pending == 2 and info.value.retry_after > 0
        generator.gate.set()
        await asyncio.gather(first.future, second.future)
        assert worker.pending == 0
        assert (await worker.submit("c", 1, 0).future).images  # room again
    finally:
        await worker.close()


async def test_cancelled_request_is_skipped():
    generator = FakeGenerator()
    generator.gate.clear()
    worker = await started(generator, max_batch=1, batch_wait_ms=0)
    try:
        running = worker.submit("running", 1, 0)
        await asyncio.to_thread(generator.entered.wait, 5)
        withdrawn = worker.submit("withdrawn", 1, 0)
        kept = worker.submit("kept", 1, 0)
        assert kept.position() == 2
        withdrawn.cancel()
        assert kept.position() == 1
        generator.gate.set()
        await asyncio.gather(running.future, kept.future)
    finally:
        await worker.close()
    assert withdrawn.future.cancelled()
    assert [text for call in generator.calls for text, _, _ in call] == ["running", "kept"]


async def test_deadline_fails_a_request_even_while_the_model_is_busy():
    generator = FakeGenerator()
    generator.gate.clear()
    worker = await started(generator, max_batch=1, batch_wait_ms=0)
    try:
        stuck = worker.submit("stuck", 1, 0, deadline_s=0.2)
        queued = worker.submit("queued", 1, 0, deadline_s=0.2)
        with pytest.raises(DeadlineExceeded):
            await asyncio.wait_for(stuck.future, 5)
        with pytest.raises(DeadlineExceeded):
            await asyncio.wait_for(queued.future, 5)
        generator.gate.set()
        assert (await worker.submit("later", 1, 0, deadline_s=5).future).images
    finally:
        await worker.close()
    assert "queued" not in [text for call in generator.calls for text, _, _ in call]


async def test_shutdown_fails_requests_in_flight_and_refuses_new_ones():
    generator = FakeGenerator()
    generator.gate.clear()
    worker = await started(generator, max_batch=1, batch_wait_ms=0)
    running = worker.submit("running", 1, 0)
    await asyncio.to_thread(generator.entered.wait, 5)
    queued = [worker.submit(f"q{i}", 1, 0) for i in range(3)]

    worker.stop("restarting for an update")
    results = await asyncio.gather(running.future, *(t.future for t in queued), return_exceptions=True)

    assert all(isinstance(r, WorkerStopped) and "restarting" in str(r) for r in results)
    with pytest.raises(WorkerStopped):
        worker.submit("late", 1, 0)
    generator.gate.set()
    await worker.close()
    assert not worker.running
    assert [text for call in generator.calls for text, _, _ in call] == ["running"]


async def test_load_failure_is_raised_by_start():
    def broken():
        raise FileNotFoundError("checkpoints/base.pt")

    worker = GenerationWorker(broken)
    with pytest.raises(FileNotFoundError):
        await worker.start()


async def test_guild_generators_fall_back_to_base_and_swap_without_restart():
    base, custom = FakeGenerator("base"), FakeGenerator("guild 7")
    worker = await started(base, batch_wait_ms=20)
    try:
        assert worker.generator_for(7) is base
        worker.set_generator(7, custom)
        results = await asyncio.gather(
            worker.submit("x", 1, 0, guild_id=7).future,
            worker.submit("x", 1, 0, guild_id=8).future,
            worker.submit("x", 1, 0).future,
        )
        assert [r.model_name for r in results] == ["guild 7", "base", "base"]
        worker.set_generator(7, None)
        assert (await worker.submit("x", 1, 0, guild_id=7).future).model_name == "base"
    finally:
        await worker.close()


async def test_event_loop_is_never_blocked_by_generation():
    generator = FakeGenerator()
    original = generator.draw

    def slow(jobs):
        threading.Event().wait(0.3)  # a slow model call
        return original(jobs)

    generator.draw = slow
    worker = await started(generator)
    try:
        loop = asyncio.get_running_loop()
        lags: list[float] = []

        async def ticker():
            while True:
                before = loop.time()
                await asyncio.sleep(0.01)
                lags.append(loop.time() - before - 0.01)

        task = asyncio.create_task(ticker())
        await worker.submit("slow", 1, 0).future
        task.cancel()
    finally:
        await worker.close()
    assert lags and max(lags) < 0.1


@pytest.mark.skipif(not BASE_CHECKPOINT.exists(), reason="checkpoints/base.pt is not trained yet")
async def test_batch_mates_do_not_change_the_bytes_with_the_real_model():
    """The promise users see: same text + seed -> same image, however busy the bot is."""
    from model import Generator

    generator = Generator.load(BASE_CHECKPOINT, device="cpu")
    alone = generator.generate_batch([("축하해", 2, 5)])[0]
    for mates in ([("고양이", 3, 1)], [("pizza", 4, 9)] * 3, [("rain", 1, 2)] * 6):
        crowded = generator.generate_batch([*mates, ("축하해", 2, 5)])[-1]
        assert [i.tobytes() for i in crowded] == [i.tobytes() for i in alone]
