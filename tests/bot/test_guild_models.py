"""GuildModels: servers' models load on their first request, live in a bounded LRU, and swap atomically.

The unit tests use a real store and a loader that reads what a test wrote; the last one runs the real
bot in SimCord with real server models (deltas over the shipped base).
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from bot.guild_models import ON_DEMAND, GuildModels
from bot.store import RunStatus, SubmissionStore
from tests.support import png

GUILDS = [1111, 2222, 3333]


class FakeModel:
    def __init__(self, name: str) -> None:
        self.name = name


class Worker:
    """The parts of GenerationWorker that GuildModels uses when the models are drawn in this process."""

    base = FakeModel("base")

    def __init__(self) -> None:
        self.router = None

    def route_guilds(self, router) -> None:
        self.router = router

    def set_generator(self, guild_id, generator) -> None:
        raise AssertionError("models loaded on demand are never pushed to the worker")

    def serves(self, guild_id: int) -> str:
        """The model name a request from this guild is drawn with (as GenerationWorker.generator_for)."""
        return (self.router(guild_id) or self.base).name


class Loader:
    """Reads what a test wrote; 'bad' does not load; `gate` can hold a load until a test releases it."""

    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.gate: threading.Event | None = None
        self.started = threading.Event()

    def __call__(self, path: Path | None, base=None) -> FakeModel:
        assert base is Worker.base  # a server model is applied to the base the worker serves
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        text = Path(path).read_text()
        if text == "bad":
            raise ValueError("not a checkpoint")
        self.loaded.append(text)
        return FakeModel(text)


@pytest.fixture
def store(tmp_path):
    store = SubmissionStore(tmp_path).open()
    yield store
    store.close()


def trained(store: SubmissionStore, guild_id: int, content: str) -> int:
    run = store.start_run(guild_id, 42, submissions=1, total_steps=1)
    path = store.checkpoint_path(guild_id, run.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    store.finish_run(run.id, RunStatus.SUCCEEDED, steps=1)
    return run.id


def started(store, cache_size=32) -> tuple[GuildModels, Worker, Loader]:
    worker, load = Worker(), Loader()
    models = GuildModels(store, worker, load, cache_size=cache_size)
    models.restore()
    return models, worker, load


def test_start_up_loads_no_model_and_a_first_request_loads_one(store):
    for guild_id in GUILDS:
        trained(store, guild_id, f"model of {guild_id}")
    worker, load = Worker(), Loader()
    models = GuildModels(store, worker, load)

    assert models.restore() == dict.fromkeys(GUILDS, ON_DEMAND)
    assert load.loaded == [] and models.loaded() == []

    assert worker.serves(2222) == "model of 2222"
    assert worker.serves(2222) == "model of 2222"
    assert worker.serves(4444) == "base"  # never trained
    assert load.loaded == ["model of 2222"]  # one load, then served from memory


def test_the_least_recently_used_model_is_unloaded_and_loads_again_when_asked(store):
    for guild_id in GUILDS:
        trained(store, guild_id, f"model of {guild_id}")
    models, worker, load = started(store, cache_size=2)

    for guild_id in (1111, 2222, 1111, 3333):  # 3333 pushes out 2222, the least recently used
        worker.serves(guild_id)

    assert models.loaded() == [1111, 3333]
    assert worker.serves(2222) == "model of 2222"
    assert models.loaded() == [3333, 2222]
    assert load.loaded == ["model of 1111", "model of 2222", "model of 3333", "model of 2222"]


def test_a_file_that_does_not_load_serves_the_base_model_without_retrying(store, caplog):
    trained(store, 1111, "bad")
    models, worker, load = started(store)

    assert worker.serves(1111) == "base" and worker.serves(1111) == "base"

    assert caplog.text.count("Could not load the model of guild 1111") == 1
    assert models.has_own(1111)  # /emoji-train status still says the server has its own model


def test_a_promotion_during_a_cold_load_wins_over_the_old_file(store):
    trained(store, 1111, "old model")
    models, worker, load = started(store)
    load.gate = threading.Event()
    answer: list[str] = []
    request = threading.Thread(target=lambda: answer.append(worker.serves(1111)))
    request.start()
    assert load.started.wait(10)  # the worker is reading the old file

    run = store.start_run(1111, 42, submissions=1, total_steps=1)
    store.checkpoint_path(1111, run.id).write_text("new model")
    models.promote(1111, run.id, FakeModel("new model"), steps=1)
    load.gate.set()
    request.join(10)

    assert answer == ["new model"]  # the request that raced it gets the promoted model, not the stale one
    assert worker.serves(1111) == "new model" and models.loaded() == [1111]


def test_reset_drops_the_loaded_model(store):
    trained(store, 1111, "home model")
    models, worker, load = started(store)
    assert worker.serves(1111) == "home model"

    assert models.reset(1111) is True

    assert worker.serves(1111) == "base" and models.loaded() == []
    assert not models.has_own(1111)


# --------------------------------------------------------------------------------------- the real bot

SERVER_GUILDS = [555000000000000001, 555000000000000002]


@pytest.fixture
def trained_servers(bot_config):
    """Two servers with real server models (one fine-tune of the shipped base, copied), before start-up."""
    from bot.validation import normalise
    from model.finetune import finetune

    store = SubmissionStore(bot_config.data_dir).open()
    data = png((250, 200, 0, 255), mark=3)
    first = None
    for guild_id in SERVER_GUILDS:
        store.add(guild_id, "우리팀 마스코트", normalise(data, max_bytes=2**21), 42, limit=500)
        run = store.start_run(guild_id, 42, submissions=1, total_steps=1)
        path = store.checkpoint_path(guild_id, run.id)
        if first is None:
            image = Image.open(io.BytesIO(data)).convert("RGBA")
            finetune([("우리팀 마스코트", image)], path, steps=1, device="cpu", label=f"server run {run.id}")
            first = path
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(first.read_bytes())
        store.finish_run(run.id, RunStatus.SUCCEEDED, steps=1)
    store.close()


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.bot_config(guild_model_cache=1)
async def test_servers_models_load_on_their_first_emoji_and_one_at_a_time(trained_servers, simcord_env):
    models = simcord_env.bot.guild_models
    assert models.loaded() == [] and models.loads == 0  # the bot started without loading any

    channels = []
    for guild_id in SERVER_GUILDS:
        guild = simcord_env.create_guild(f"server {guild_id % 10}", id=guild_id)
        member = guild.add_member(simcord_env.create_user(f"user {guild_id % 10}"))
        channels.append((member, guild.create_text_channel("general")))

    for member, channel in channels + channels[:1]:  # the first server's model is unloaded, then back
        result = await member.slash(channel, "emoji", text="우리팀 마스코트", seed=1)
        model = next(f.value for f in result.response.embeds[0].fields if f.name == "Model")
        assert "server run" in model

    assert models.loaded() == [SERVER_GUILDS[0]] and models.loads == 3
