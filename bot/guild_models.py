"""Which model serves server X: one owner for the pointer on disk and the model the worker serves.

The store's ``models`` table says which checkpoint a guild serves; the worker's table says which loaded
generator its requests go to. They change together, only here: at start-up (``restore``), when a run
succeeds (``promote``) and on ``/emoji-train reset`` (``reset``), each under one lock so a promotion and
a reset cannot interleave into "the file says one model, the worker serves another".

All methods block (SQLite, loading a checkpoint): call them from a thread, never on the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot.store import RunStatus, SubmissionStore

if TYPE_CHECKING:
    from bot.worker import GeneratorLike

log = logging.getLogger(__name__)

LOADED = "loaded"

ModelLoader = Callable[[Path | None], "GeneratorLike"]
"""Loads a checkpoint (None: the shipped one) onto the configured device."""


class Serving(Protocol):
    """What GuildModels needs from the worker: its per-guild routing table."""

    def set_generator(self, guild_id: int, generator: GeneratorLike | None) -> None: ...


def model_loader(device: str) -> ModelLoader:
    """The real loader: ``model.Generator.load`` (torch is imported on first use, in the calling thread)."""

    def load(path: Path | None) -> GeneratorLike:
        from model import Generator

        return Generator.load(path, device=device)

    return load


class GuildModels:
    """The guilds' own models: on disk (``store``), loaded (``load``) and served (``worker``)."""

    def __init__(self, store: SubmissionStore, worker: Serving, load: ModelLoader) -> None:
        self.store = store
        self.worker = worker
        self.load = load
        self._lock = threading.Lock()

    def restore(self) -> dict[int, str]:
        """Start-up: close runs a crash left ``running``, then serve every guild's last good model.

        Returns {guild_id: "loaded" or why not}; a checkpoint that cannot be loaded leaves that guild on
        the base model (and is logged), it never stops the bot from starting.
        """
        self.store.recover()
        report: dict[int, str] = {}
        for guild_id, path in self.store.models().items():
            try:
                generator = self.load(path)
            except Exception as exc:  # one bad file must not keep the bot down
                log.exception("Could not load the model of guild %s from %s", guild_id, path)
                report[guild_id] = f"{type(exc).__name__}: {exc}"
                continue
            with self._lock:
                self.worker.set_generator(guild_id, generator)
            report[guild_id] = LOADED
        if report:
            log.info("Loaded %d server model(s)", sum(v == LOADED for v in report.values()))
        return report

    def promote(self, guild_id: int, run_id: int, generator: GeneratorLike, **result: Any) -> None:
        """Close run ``run_id`` as succeeded (its checkpoint becomes the guild's) and serve ``generator``.

        ``generator`` was loaded from that checkpoint first, which proves the file whole before anything
        points at it. ``result`` is what ``SubmissionStore.finish_run`` records (steps, loss, seconds…).
        """
        with self._lock:
            self.store.finish_run(run_id, RunStatus.SUCCEEDED, **result)
            self.worker.set_generator(guild_id, generator)
        log.info("Guild %s now serves run %s (%s)", guild_id, run_id, generator.name)

    def reset(self, guild_id: int) -> bool:
        """Back to the base model (the checkpoint is deleted); True if the guild had its own.

        Raises ``RunAlreadyActive`` while the guild has a run in progress.
        """
        with self._lock:
            forgot = self.store.forget_model(guild_id)
            self.worker.set_generator(guild_id, None)
        log.info("Guild %s reset to the base model", guild_id)
        return forgot

    def has_own(self, guild_id: int) -> bool:
        """Whether the guild has a trained model of its own (even one that failed to load at start-up)."""
        return self.store.model_path(guild_id) is not None
