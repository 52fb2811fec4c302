"""Shared fixtures: a tiny dataset built from a handful of real glyphs and a tiny model trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.data import build_dataset

TINY_EMOJI = ["🐱", "🍕", "❤️", "🚀", "👍", "👍🏽", "😀", "😭", "🎉", "☀️"]


@pytest.fixture(scope="session")
def tiny_dataset_path(tmp_path_factory) -> Path:
    """A real dataset cache (rendered glyphs + CLDR texts) for ten emoji."""
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    build_dataset(only=TINY_EMOJI).save(path)
    return path


@pytest.fixture(scope="session", params=["cvae", "maskgit", "composer"])
def tiny_checkpoint(request, tiny_dataset_path, tmp_path_factory) -> Path:
    """A tiny model of each architecture, trained for seconds through the real `emoji-train base`."""
    from model.cli import main

    out = tmp_path_factory.mktemp("ckpt") / f"tiny-{request.param}.pt"
    rc = main(
        [
            "base",
            "--arch",
            request.param,
            "--out",
            str(out),
            "--size",
            "tiny",
            "--max-steps",
            "60",
            "--minutes",
            "5",
            "--text-share",
            "0.5",
            "--batch-size",
            "16",
            "--data",
            str(tiny_dataset_path),
            "--device",
            "cpu",
            "--label",
            "tiny",
            *(["--bank", "200"] if request.param == "composer" else []),
        ]
    )
    assert rc == 0 and out.is_file()
    return out


# ----------------------------------------------------------------------------------------------------
# Bot (tests/bot/): the real bot from create_bot(Config(...)) running inside SimCord.
#
# SimCord's pytest plugin is activated by its `pytest11` entry point (installing simcord is enough);
# it provides `simcord_env` from the `simcord_bot` fixture defined here. Fields for the bot's Config
# go through the `bot_config` marker:  @pytest.mark.bot_config(max_queue=1)
# ----------------------------------------------------------------------------------------------------
import functools  # noqa: E402

from tests.support import BASE_CHECKPOINT  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bot_config(**fields): Config fields for the simcord_bot fixture")


@functools.cache
def _shared_generator():
    """The shipped model, loaded once per session: each test's bot gets a fresh worker around it."""
    from model import Generator

    return Generator.load(None, device="cpu")


@pytest.fixture
def bot_config(request: pytest.FixtureRequest, tmp_path: Path):
    """The Config the bot under test is built with: test-friendly defaults plus the marker's fields."""
    from bot.config import Config

    fields = {"data_dir": tmp_path / "data", "device": "cpu", "user_cooldown_s": 0.0, "batch_wait_ms": 2}
    marker = request.node.get_closest_marker("bot_config")
    if marker is not None:
        fields.update(marker.kwargs)
    return Config(**fields)


@pytest.fixture
def simcord_bot(bot_config):
    """The real bot from create_bot, sharing the session's base model; its worker is stopped after the test.

    The configured checkpoint (the base model) is the shared one; a server's trained checkpoint is
    loaded for real, as the bot would.
    """
    if not BASE_CHECKPOINT.exists():
        pytest.skip("checkpoints/base.pt is not trained yet")
    from bot.app import create_bot
    from bot.guild_models import model_loader

    load_for_real = model_loader(bot_config.device)

    def load(checkpoint: Path | None, base=None):
        if checkpoint == bot_config.checkpoint:
            return _shared_generator()
        return load_for_real(checkpoint, base)  # a server's model: a delta over `base`, the shared one

    instance = create_bot(bot_config, load=load)
    yield instance
    instance.worker.stop()
    instance.worker.join(timeout=10)
