"""The distributed (arq) backend for real: a Redis server and two `emoji-bot replica` processes on
loopback, started and stopped by the module's fixture; the bot runs in SimCord around it.

What must hold: a replica draws exactly the bytes the in-process worker draws (same text, count, seed,
model), a server's model is routed by its file, and a replica killed mid-request costs nobody their
answer: every interaction gets exactly one image, equal to the in-process drawing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal

import pytest

from tests.conftest import _shared_generator
from tests.support import BASE_CHECKPOINT

try:
    import arq  # noqa: F401  (the distributed extra; scripts/test.sh installs it, so CI runs this)
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("the distributed extra is not installed", allow_module_level=True)

from simcord import InteractionResult  # noqa: E402

from bot.config import Config  # noqa: E402
from bot.remote import RemoteBackend, running_key  # noqa: E402
from tests.bot.simcord_helpers import emit_slash  # noqa: E402
from tests.cluster import LocalCluster  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BASE_CHECKPOINT.exists(), reason="checkpoints/base.pt is not trained yet"),
]

JOB_TIMEOUT_S = 20.0  # a killed replica's jobs are rerun ~22 s later; a busy 2-core machine needs slack


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Redis and two replicas on loopback for the module (~10-30 s to start on a busy 2-core machine)."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (scripts/test.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with LocalCluster(tmp_path_factory.mktemp("cluster"), replicas=2, job_timeout_s=JOB_TIMEOUT_S) as cluster:
        yield cluster


def _pixels(images) -> list[bytes]:
    return [image.tobytes() for image in images]


@pytest.mark.asyncio
async def test_replicas_draw_the_in_process_bytes_and_route_a_servers_model_by_file(cluster, tmp_path):
    generator = _shared_generator()
    backend = RemoteBackend(cluster.settings, max_queue=64, max_batch=8)
    await backend.start()
    try:
        jobs = [("고양이", 2, 7), ("party cat", 1, 123), ("피자 + 왕관", 3, 42), ("🍕", 1, 5)]
        generations = await asyncio.wait_for(
            asyncio.gather(*(backend.submit(*job).future for job in jobs)), timeout=120
        )
        expected = generator.draw(jobs)
        for generation, drawing in zip(generations, expected, strict=True):
            assert generation.model_name == generator.name
            assert _pixels(generation.images) == _pixels(drawing.images)
            assert _pixels(generation.drawing.large) == _pixels(drawing.large)  # the sticker size too
            assert (generation.drawing.tag, generation.drawing.parts) == (drawing.tag, drawing.parts)

        # A server's own model travels as its file; the replica loads it (here: a copy of the base model).
        own = tmp_path / "guild-model.pt"
        own.write_bytes(BASE_CHECKPOINT.read_bytes())
        backend.set_generator(555, backend.model_ref(own))
        served = await asyncio.wait_for(backend.submit("rain", 2, 9, guild_id=555).future, timeout=120)
        assert _pixels(served.images) == _pixels(generator.draw([("rain", 2, 9)])[0].images)
        backend.set_generator(555, None)  # reset: the base model again
        assert backend._routes == {}
        with pytest.raises(FileNotFoundError):
            backend.model_ref(tmp_path / "missing.pt")
        assert backend.requests_done == len(jobs) + 1 and backend.pending == 0
    finally:
        await backend.close()


@pytest.mark.asyncio
async def test_a_replica_killed_mid_request_still_gives_every_user_exactly_one_answer(cluster, tmp_path):
    import simcord

    from bot.app import create_bot

    config = Config(
        data_dir=tmp_path / "data",
        device="cpu",
        user_cooldown_s=0.0,
        batch_wait_ms=2,
        backend=cluster.settings,
    )
    bot = create_bot(config)
    killed: list[str] = []

    async def kill_a_replica_holding_a_job() -> None:
        """SIGKILL the first replica seen drawing a job (no goodbye: its jobs stay marked in progress)."""
        with cluster.client() as client:
            while not killed:
                for key in client.scan_iter(match=running_key(cluster.settings.queue_name, "*")):
                    owner = client.get(key)
                    if owner is None:
                        continue
                    pid = int(owner.decode().rsplit(":", 1)[1])
                    os.kill(pid, signal.SIGKILL)
                    killed.append(owner.decode())
                    return
                await asyncio.sleep(0.01)

    jobs = [("고양이", 4, 100 + i) if i % 2 else ("party cat", 4, 200 + i) for i in range(12)]
    try:
        async with simcord.run(bot, settle_timeout=150) as env:
            guild = env.create_guild()
            channel = guild.create_text_channel("general")
            members = [guild.add_member(env.create_user(f"user{i}")) for i in range(len(jobs))]
            killer = asyncio.create_task(kill_a_replica_holding_a_job())
            records = [
                emit_slash(env, guild, channel, member, "emoji", text=text, count=count, seed=seed)
                for member, (text, count, seed) in zip(members, jobs, strict=True)
            ]
            await asyncio.wait_for(killer, timeout=60)
            await env.settle(timeout=150)
            assert killed, "no replica was seen drawing"
            for record in records:
                edits = [r for r in env.http_requests if r.method == "PATCH" and record.token in r.path]
                images = [r for r in edits if (r.json or {}).get("attachments")]  # not the queue note
                assert len(images) == 1, [(r.path, r.json) for r in edits]  # answered once, never twice
                assert InteractionResult(env, record).response.attachments
            assert bot.worker.reruns >= 1  # the killed replica's job was drawn again elsewhere
            assert bot.worker.pending == 0
            cog = bot.get_cog("Generate")
            generator = _shared_generator()
            drawn = sorted(cog._drawn.items())  # result id -> the Generation the bot answered with
            assert len(drawn) == len(jobs)
            for result_id, generation in drawn:
                record = bot.results.get(result_id)
                (expected,) = generator.draw([(record.text, record.count, record.seed)])
                assert _pixels(generation.images) == _pixels(expected.images)
    finally:
        bot.worker.stop()
        bot.worker.join(10)
