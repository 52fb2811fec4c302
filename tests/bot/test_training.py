"""TrainingManager and GuildModels without Discord: a real store, a real spawned child, a stand-in fine-tune.

The child functions below replace ``bot.training.child_main`` (same arguments, same pipe messages), so a
run takes a second instead of a fine-tune; the model loader is a fake that reads the written file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.config import Config
from bot.guild_models import GuildModels
from bot.store import RunAlreadyActive, RunStatus, SubmissionStore
from bot.training import AlreadyTraining, NothingToTrain, TooBusy, TrainingManager
from bot.validation import normalise
from tests.support import png

pytestmark = pytest.mark.asyncio

GUILD, OTHER, ADMIN = 1111, 2222, 42


# ------------------------------------------------------------------ stand-ins for the fine-tune process


def child_succeeds(conn, examples, out, base, steps, device, label) -> None:
    for step in range(1, steps + 1):
        conn.send(("progress", step, steps, 1.0 / step, 0.1 * step, 0.1 * (steps - step)))
    Path(out).parent.mkdir(parents=True, exist_ok=True)  # as finetune does
    Path(out).write_bytes(f"{label} {len(examples)}".encode())
    conn.send(("done", {"steps": steps, "loss": 0.25, "seconds": 1.5, "names": len(examples)}))
    conn.close()


def child_fails(conn, examples, out, base, steps, device, label) -> None:
    conn.send(("error", "ValueError: the base checkpoint is broken"))
    conn.close()


def child_waits_for_cancel(conn, examples, out, base, steps, device, label) -> None:
    conn.send(("progress", 1, steps, 0.5, 0.1, 9.9))
    while conn.recv() != "cancel":
        pass
    conn.send(("cancelled",))
    conn.close()


class FakeModel:
    def __init__(self, name: str) -> None:
        self.name = name


def load(path: Path | None) -> FakeModel:
    """Reads what child_succeeds wrote; a file that says 'bad' does not load, like a corrupt checkpoint."""
    text = Path(path).read_text() if path else "base"
    if text == "bad":
        raise ValueError("not a checkpoint")
    return FakeModel(text)


class Served:
    """The worker's routing table, as GuildModels sees it."""

    def __init__(self) -> None:
        self.models: dict[int, FakeModel] = {}

    def set_generator(self, guild_id: int, generator) -> None:
        if generator is None:
            self.models.pop(guild_id, None)
        else:
            self.models[guild_id] = generator


@pytest.fixture
def store(tmp_path):
    store = SubmissionStore(tmp_path).open()
    yield store
    store.close()


def add_emoji(store: SubmissionStore, guild_id: int, name: str, colour=(200, 30, 30, 255)) -> None:
    store.add(guild_id, name, normalise(png(colour, size=(40, 40)), max_bytes=2**21), ADMIN, limit=500)


def manager_for(store, tmp_path, child, **config) -> tuple[TrainingManager, GuildModels, Served]:
    served = Served()
    models = GuildModels(store, served, load)
    settings = {"data_dir": tmp_path, "device": "cpu", "finetune_steps": 3, **config}
    return TrainingManager(Config(**settings), store, models, child=child), models, served


# ------------------------------------------------------------------ runs


async def test_a_successful_run_becomes_the_model_its_server_serves(store, tmp_path):
    add_emoji(store, GUILD, "party parrot")
    manager, models, served = manager_for(store, tmp_path, child_succeeds)

    state = await manager.start(GUILD, ADMIN)
    assert manager.active(GUILD) is state
    await asyncio.wait_for(state.done, 60)

    assert state.outcome is RunStatus.SUCCEEDED and state.fraction == 1.0
    assert (state.step, state.total, state.seconds) == (3, 3, 1.5)
    assert served.models[GUILD].name == f"server run {state.run.id} 1"
    assert models.has_own(GUILD) and not models.has_own(OTHER)
    run = store.latest_run(GUILD)
    assert run.status is RunStatus.SUCCEEDED and run.steps == 3 and run.loss == 0.25
    assert manager.active(GUILD) is None


async def test_a_failed_run_is_recorded_and_the_previous_model_kept(store, tmp_path):
    add_emoji(store, GUILD, "party parrot")
    manager, models, served = manager_for(store, tmp_path, child_fails)

    state = await manager.start(GUILD, ADMIN)
    await asyncio.wait_for(state.done, 60)

    assert state.outcome is RunStatus.FAILED and "broken" in state.error
    assert store.latest_run(GUILD).status is RunStatus.FAILED
    assert GUILD not in served.models and not models.has_own(GUILD)


async def test_one_run_per_server_and_at_most_the_configured_number_in_all(store, tmp_path):
    add_emoji(store, GUILD, "party parrot")
    add_emoji(store, OTHER, "away logo")
    manager, models, served = manager_for(
        store, tmp_path, child_waits_for_cancel, training_max_concurrent_runs=1
    )
    state = await manager.start(GUILD, ADMIN)
    try:
        with pytest.raises(AlreadyTraining, match="/emoji-train cancel"):
            await manager.start(GUILD, ADMIN)
        with pytest.raises(TooBusy, match="the most I run at once"):
            await manager.start(OTHER, ADMIN)
        with pytest.raises(RunAlreadyActive):  # no reset while the run may still promote its model
            models.reset(GUILD)
    finally:
        assert manager.cancel(GUILD) is state and state.cancel_requested
        await asyncio.wait_for(state.done, 60)

    assert state.outcome is RunStatus.CANCELLED
    assert store.latest_run(GUILD).status is RunStatus.CANCELLED and not models.has_own(GUILD)
    assert manager.cancel(GUILD) is None  # nothing runs any more


async def test_a_run_another_process_started_is_told_as_already_training(store, tmp_path):
    add_emoji(store, GUILD, "party parrot")
    store.start_run(GUILD, ADMIN, submissions=1, total_steps=5)  # e.g. a second bot on the same data_dir
    manager, _, _ = manager_for(store, tmp_path, child_succeeds)

    with pytest.raises(AlreadyTraining, match="`/emoji-train status`"):
        await manager.start(GUILD, ADMIN)
    assert manager.active(GUILD) is None  # the reservation is released


async def test_nothing_to_train_records_no_run(store, tmp_path):
    manager, _, _ = manager_for(store, tmp_path, child_succeeds)

    with pytest.raises(NothingToTrain, match="/emoji-train add"):
        await manager.start(GUILD, ADMIN)
    assert store.latest_run(GUILD) is None


# ------------------------------------------------------------------ which model serves a server


def finished_run(store: SubmissionStore, guild_id: int, content: str) -> int:
    run = store.start_run(guild_id, ADMIN, submissions=1, total_steps=1)
    path = store.checkpoint_path(guild_id, run.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    store.finish_run(run.id, RunStatus.SUCCEEDED, steps=1)
    return run.id


async def test_restore_serves_each_good_model_and_leaves_a_bad_one_on_base(store):
    finished_run(store, GUILD, "home model")
    finished_run(store, OTHER, "bad")
    served = Served()

    report = GuildModels(store, served, load).restore()

    assert report[GUILD] == "loaded" and "not a checkpoint" in report[OTHER]
    assert served.models[GUILD].name == "home model" and OTHER not in served.models


async def test_reset_forgets_the_checkpoint_and_serves_base_again(store):
    run_id = finished_run(store, GUILD, "home model")
    served = Served()
    models = GuildModels(store, served, load)
    models.restore()

    assert models.reset(GUILD) is True
    assert GUILD not in served.models and not models.has_own(GUILD)
    assert not store.checkpoint_path(GUILD, run_id).exists()
    assert models.reset(GUILD) is False  # already on base
