"""Where ``/emoji`` is drawn: one small interface the cogs use, two implementations behind it.

- ``thread`` (the default): ``bot.worker.GenerationWorker``, the model in a thread of this process. One
  machine, one model copy per bot process; nothing else to run.
- ``arq``: ``bot.remote.RemoteBackend``, jobs on a Redis queue (arq) drawn by ``emoji-bot replica``
  processes on any machine that reaches Redis: more replicas, more GPUs, several shard processes sharing
  them. Needs the ``distributed`` extra (``pip install 'text2emoji[distributed]'``) and a Redis server.

Generation is deterministic in (text, count, seed, model), so a job rerun after a replica died draws the
same images; the bot answers the first result and drops any later copy (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.config import Config
    from bot.guild_models import ModelLoader
    from bot.worker import Generation, GeneratorLike


class TicketLike(Protocol):
    """A submitted request: ``future`` resolves to the ``Generation`` (or a ``WorkerError``)."""

    future: asyncio.Future[Generation]
    ahead: int  # requests in front of it when it was submitted
    estimated_wait_s: float

    def cancel(self) -> None: ...


class GenerationBackend(Protocol):
    """What the bot needs from whatever draws: ``GenerationWorker`` and ``RemoteBackend`` both are one."""

    max_batch: int

    @property
    def running(self) -> bool: ...

    @property
    def pending(self) -> int: ...

    async def start(self) -> None: ...

    def stop(self, reason: str = ...) -> None: ...

    async def close(self, timeout: float = ...) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...

    def clean_text(self, text: str) -> str: ...

    def submit(
        self,
        text: str,
        count: int,
        seed: int,
        *,
        guild_id: int | None = None,
        deadline_s: float | None = None,
    ) -> TicketLike: ...

    def set_generator(self, guild_id: int, generator: GeneratorLike | None) -> None: ...


def create_backend(config: Config, load: ModelLoader) -> tuple[GenerationBackend, ModelLoader]:
    """The configured backend, and the loader ``GuildModels`` uses with it: with ``thread`` a server's
    model is loaded here; with ``arq`` only a reference to its file is kept and the replicas load it."""
    if config.backend.kind == "arq":
        from bot.remote import RemoteBackend  # needs arq: imported only when configured

        remote = RemoteBackend(config.backend, max_queue=config.max_queue, max_batch=config.max_batch)
        return remote, remote.model_ref
    from bot.worker import GenerationWorker

    checkpoint = config.checkpoint
    worker = GenerationWorker(
        lambda: load(checkpoint),
        max_queue=config.max_queue,
        max_batch=config.max_batch,
        batch_wait_ms=config.batch_wait_ms,
    )
    return worker, load
