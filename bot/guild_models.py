"""Which model serves server X: one owner for the pointer on disk and the model the worker serves.

The store's ``models`` table says which file a guild serves: a delta over the base model (``model.delta``,
a few hundred KB; what training writes) or, from older versions, a whole checkpoint. Nothing is loaded at
start-up (``restore`` only reads the table): the worker asks ``generator_for`` for each request's guild,
in its own thread, and a guild's model is loaded on its first request and kept in a bounded LRU
(``guild_model_cache`` entries), so a thousand trained servers cost the few that are in use.

The pointer, the LRU entry and the files change together, only here: when a run succeeds (``promote``)
and on ``/emoji-train reset`` (``reset``), each under one lock, so a promotion, a reset and a load
finishing in the worker cannot interleave into "the file says one model, the worker serves another".

All methods block (SQLite, loading a model): call them from a thread, never on the event loop.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot.store import RunStatus, SubmissionStore

if TYPE_CHECKING:
    from bot.worker import GeneratorLike

log = logging.getLogger(__name__)

DEFAULT_CACHE = 32
LOADED = "loaded"
ON_DEMAND = "on demand"  # restore's word for a model that loads on its first request

ModelLoader = Callable[..., "GeneratorLike"]
"""``load(path, base=None)``: a checkpoint (None: the shipped one) onto the configured device; a server
model's delta is applied to ``base``, the base generator the worker serves."""


class Serving(Protocol):
    """What GuildModels needs from the backend: a per-guild routing table. One that draws in this process
    (``GenerationWorker``) also has ``base`` and ``route_guilds``: then models load on demand, here."""

    def set_generator(self, guild_id: int, generator: GeneratorLike | None) -> None: ...


def model_loader(device: str) -> ModelLoader:
    """The real loader: ``model.Generator.load`` (torch is imported on first use, in the calling thread)."""

    def load(path: Path | None, base: GeneratorLike | None = None) -> GeneratorLike:
        from model import Generator

        return Generator.load(path, device=device, base=base)

    return load


class GuildModels:
    """The guilds' own models: on disk (``store``), loaded on demand (``load``), served (``worker``)."""

    def __init__(
        self, store: SubmissionStore, worker: Serving, load: ModelLoader, *, cache_size: int = DEFAULT_CACHE
    ) -> None:
        self.store = store
        self.worker = worker
        self.load = load
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._paths: dict[int, Path] = {}  # guild -> the file it serves (the models table, in memory)
        self._loaded: collections.OrderedDict[int, GeneratorLike] = collections.OrderedDict()  # LRU
        self._broken: dict[int, Path] = {}  # files that did not load: the guild gets base, once logged
        self.loads = 0  # models loaded so far (cold requests and promotions' proofs)
        # a backend drawing elsewhere (arq replicas load the files themselves) is handed each guild's
        # reference up front, which costs nothing; one drawing here asks generator_for on each request
        self.on_demand = hasattr(worker, "route_guilds")
        if self.on_demand:
            worker.route_guilds(self.generator_for)  # type: ignore[attr-defined]

    def restore(self) -> dict[int, str]:
        """Start-up: close runs a crash left ``running`` and read which guild serves which file.

        Loads no model when drawing happens here: returns {guild_id: "on demand"}. A backend drawing
        elsewhere gets each guild's reference now: {guild_id: "loaded" or why not}; a file that cannot
        be used leaves that guild on the base model (and is logged), it never stops the bot from starting.
        """
        self.store.recover()
        paths = self.store.models()
        with self._lock:
            self._paths = dict(paths)
            self._loaded.clear()
            self._broken.clear()
        report = dict.fromkeys(paths, ON_DEMAND)
        if not self.on_demand:
            for guild_id, path in paths.items():
                try:
                    self.worker.set_generator(guild_id, self.open(path))
                    report[guild_id] = LOADED
                except Exception as exc:  # one bad file must not keep the bot down
                    log.exception("Could not load the model of guild %s from %s", guild_id, path)
                    report[guild_id] = f"{type(exc).__name__}: {exc}"
        if paths:
            log.info(
                "%d server model(s) on disk (%s)",
                len(paths),
                "loaded on first use" if self.on_demand else "referenced",
            )
        return report

    def open(self, path: Path) -> GeneratorLike:
        """Load a guild's file; in this process against the served base model (a delta refuses any other
        base)."""
        generator = self.load(path, self.worker.base) if self.on_demand else self.load(path)  # type: ignore[attr-defined]
        self.loads += 1
        return generator

    def generator_for(self, guild_id: int) -> GeneratorLike | None:
        """The guild's own model (None: it has none, or its file does not load; it gets the base model).

        The worker's router, called in the generation thread: a guild not in the LRU pays one load,
        done outside the lock and dropped if a promotion or reset moved the pointer meanwhile.
        """
        with self._lock:
            generator = self._loaded.get(guild_id)
            if generator is not None:
                self._loaded.move_to_end(guild_id)
                return generator
            path = self._paths.get(guild_id)
            if path is None or self._broken.get(guild_id) == path:
                return None
        try:
            generator = self.open(path)
        except Exception:  # one bad file must not fail requests: that guild is served by the base model
            log.exception(
                "Could not load the model of guild %s from %s; serving the base model", guild_id, path
            )
            with self._lock:
                if self._paths.get(guild_id) == path:
                    self._broken[guild_id] = path
            return None
        with self._lock:
            if self._paths.get(guild_id) != path:  # promoted or reset while loading: theirs wins
                return self._loaded.get(guild_id)
            self._remember(guild_id, generator)
        return generator

    def _remember(self, guild_id: int, generator: GeneratorLike) -> None:
        """Put a guild's model first in the LRU, dropping the least recently used beyond the bound."""
        self._loaded[guild_id] = generator
        self._loaded.move_to_end(guild_id)
        while len(self._loaded) > self.cache_size:
            evicted, _ = self._loaded.popitem(last=False)
            log.debug("Unloaded the model of guild %s (least recently used)", evicted)

    def loaded(self) -> list[int]:
        """Guilds whose model is in memory, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def promote(self, guild_id: int, run_id: int, generator: GeneratorLike, **result: Any) -> None:
        """Close run ``run_id`` as succeeded (its file becomes the guild's) and serve ``generator``.

        ``generator`` was loaded from that file first (``open``), which proves it whole before anything
        points at it. ``result`` is what ``SubmissionStore.finish_run`` records (steps, loss, seconds…).
        """
        with self._lock:
            self.store.finish_run(run_id, RunStatus.SUCCEEDED, **result)
            self._paths[guild_id] = self.store.checkpoint_path(guild_id, run_id)
            self._broken.pop(guild_id, None)
            if self.on_demand:
                self._remember(guild_id, generator)
            else:
                self.worker.set_generator(guild_id, generator)
        log.info("Guild %s now serves run %s (%s)", guild_id, run_id, generator.name)

    def reset(self, guild_id: int) -> bool:
        """Back to the base model (the file is deleted); True if the guild had its own.

        Raises ``RunAlreadyActive`` while the guild has a run in progress.
        """
        with self._lock:
            forgot = self.store.forget_model(guild_id)
            self._paths.pop(guild_id, None)
            self._loaded.pop(guild_id, None)
            self._broken.pop(guild_id, None)
            if not self.on_demand:
                self.worker.set_generator(guild_id, None)
        log.info("Guild %s reset to the base model", guild_id)
        return forgot

    def has_own(self, guild_id: int) -> bool:
        """Whether the guild has a trained model of its own (even one whose file does not load)."""
        return self.store.model_path(guild_id) is not None
