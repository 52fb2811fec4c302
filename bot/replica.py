"""``emoji-bot replica``: one generation replica of the distributed (``arq``) backend.

A replica is an arq worker on the deployment's Redis queue. It loads the base checkpoint (``checkpoint``
and ``device`` from the same config file the bot reads), runs the same ``GenerationWorker`` the
in-process backend uses, and takes up to ``backend.replica_jobs`` jobs at once, so the worker batches
them ``max_batch`` to a model call. Each job's drawing goes to the reply list its bot process named.

Start as many as the hardware holds: one per GPU (``device = "cuda:N"`` in its config) or a few per CPU
machine. Servers' own models are loaded by path from the job (the bot's ``data_dir`` must be readable here
under the same path) and kept in a small LRU. SIGTERM or Ctrl-C: jobs in progress go back on the queue at
once; a replica that dies without that (SIGKILL, power) has its jobs rerun by another replica once their
in-progress mark expires (``backend.job_timeout_s`` plus a few seconds).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arq.worker import Worker, func

from bot.config import Config
from bot.guild_models import model_loader
from bot.remote import JOB, REPLY_TTL_S, encode_reply, redis_settings, replica_key, running_key
from bot.worker import GenerationWorker, GeneratorLike, WorkerError

log = logging.getLogger(__name__)

RERUN_GRACE_S = 2.0  # a dead replica's job is rerun this long after its timeout
POLL_DELAY_S = 0.02  # how often a replica with a free slot looks at the queue (arq: 0.5 s, a cap on jobs/s)
ANNOUNCE_EVERY_S = 5.0
SERVER_MODELS = 8  # servers' models one replica keeps loaded


@dataclass
class _Served:
    key: int  # the routing key in the replica's GenerationWorker
    generator: GeneratorLike
    users: int = 0  # jobs drawing with it now; it is evicted only at 0


class Replica:
    """The state one replica process keeps between jobs: the worker and the servers' models."""

    def __init__(self, config: Config, *, server_models: int = SERVER_MODELS) -> None:
        self.config = config
        self.settings = config.backend
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.load = model_loader(config.device)
        # Loaded and run once here, in the main thread, not in the worker's: torch's CPU thread pool is set
        # up by the first parallel op, and set up from another thread it drew ~10x slower on a busy
        # machine. The warm-up draw also means a replica that announces itself draws at full speed.
        self.base = self.load(config.checkpoint)
        self.base.draw([("warm up", 1, 0)])
        self.worker = GenerationWorker(
            lambda: self.base,
            max_queue=self.settings.replica_jobs,
            max_batch=config.max_batch,
            batch_wait_ms=config.batch_wait_ms,
        )
        self.server_models = server_models
        self._models: collections.OrderedDict[str, _Served] = collections.OrderedDict()
        self._loading: dict[str, asyncio.Lock] = {}
        self._keys = itertools.count(1)
        self._announcer: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- arq hooks

    async def startup(self, ctx: dict[str, Any]) -> None:
        await self.worker.start()
        self._announcer = asyncio.create_task(self._announce(ctx["redis"]))
        log.info("Replica %s serving %s with %s", self.name, self.settings.queue_name, self.base.name)

    async def shutdown(self, ctx: dict[str, Any]) -> None:
        if self._announcer is not None:
            self._announcer.cancel()
        with contextlib.suppress(Exception):
            await ctx["redis"].delete(replica_key(self.settings.queue_name, self.name))
        await self.worker.close()

    async def _announce(self, redis: Any) -> None:
        """Keep ``<queue>:replica:<host:pid>`` alive while this replica runs (bots and tests read it)."""
        key = replica_key(self.settings.queue_name, self.name)
        while True:
            with contextlib.suppress(Exception):
                await redis.set(key, self.base.name, ex=int(3 * ANNOUNCE_EVERY_S))
            await asyncio.sleep(ANNOUNCE_EVERY_S)

    async def generate(self, ctx: dict[str, Any], job: dict[str, Any]) -> None:
        """The arq job: draw ``job`` and push the reply; the job itself returns nothing."""
        redis, job_id, tries = ctx["redis"], ctx["job_id"], ctx["job_try"]
        running = running_key(self.settings.queue_name, job_id)
        await redis.set(running, self.name, ex=int(self.settings.job_timeout_s + RERUN_GRACE_S) + 1)
        try:
            generation, error = await self._draw(job)
            reply = encode_reply(job_id, tries, self.name, generation, error)
            async with redis.pipeline(transaction=True) as pipe:
                pipe.rpush(job["reply_to"], reply)
                pipe.expire(job["reply_to"], REPLY_TTL_S)
                pipe.delete(running)
                await pipe.execute()
        except asyncio.CancelledError:  # shutting down (the job goes back on the queue) or timed out
            with contextlib.suppress(Exception):
                await redis.delete(running)
            raise

    async def _draw(self, job: dict[str, Any]) -> tuple[Any, str]:
        served: _Served | None = None
        try:
            if job["model"] is not None:
                served = await self._server_model(job["model"])
            ticket = self.worker.submit(
                job["text"],
                int(job["count"]),
                int(job["seed"]),
                guild_id=served.key if served else None,
                deadline_s=self.settings.job_timeout_s * 0.9,  # answer (with an error) before arq gives up
            )
            try:
                return await ticket.future, ""
            except asyncio.CancelledError:
                ticket.cancel()
                raise
        except WorkerError as exc:
            log.warning("Job for %r failed: %s", job["text"], exc)
            return None, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a server model that does not load, a bad job
            log.exception("Job for %r failed", job["text"])
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            if served is not None:
                served.users -= 1

    async def _server_model(self, path: str) -> _Served:
        """A server's model from the LRU, loaded (once, in a thread) on a miss; counted as in use."""
        lock = self._loading.setdefault(path, asyncio.Lock())
        async with lock:
            served = self._models.get(path)
            if served is None:
                generator = await asyncio.to_thread(self.load, Path(path), self.base)  # a delta: over ours
                served = _Served(next(self._keys), generator)
                self.worker.set_generator(served.key, generator)
                self._models[path] = served
                self._evict()
            self._models.move_to_end(path)
            served.users += 1
            return served

    def _evict(self) -> None:
        idle = [path for path, served in self._models.items() if served.users == 0]
        while len(self._models) > self.server_models and idle:
            served = self._models.pop(idle.pop(0))
            self.worker.set_generator(served.key, None)


def build_worker(config: Config, replica: Replica | None = None) -> Worker:
    """The arq worker of one replica (signal handling on: SIGTERM requeues the jobs in progress)."""
    replica = replica or Replica(config)
    settings = config.backend
    worker = Worker(
        functions=[func(replica.generate, name=JOB, timeout=settings.job_timeout_s, keep_result=0)],
        queue_name=settings.queue_name,
        redis_settings=redis_settings(settings),
        on_startup=replica.startup,
        on_shutdown=replica.shutdown,
        max_jobs=settings.replica_jobs,
        poll_delay=POLL_DELAY_S,
        keep_result=0,
        log_results=False,
    )
    # arq keeps a job's in-progress mark for its timeout + 10 s, so a dead replica's jobs wait that long
    # for a rerun. A job never outlives its timeout (arq cancels it), so a short grace is enough.
    worker.in_progress_timeout_s = settings.job_timeout_s + RERUN_GRACE_S
    return worker


def run_replica(config: Config) -> int:
    """``emoji-bot replica``: serve the queue until SIGTERM or Ctrl-C."""
    from bot.app import setup_logging

    setup_logging(config.log_level)
    if config.log_level != "DEBUG":  # arq logs two lines per job at INFO
        logging.getLogger("arq.worker").setLevel(logging.WARNING)
    if config.backend.kind != "arq":
        log.warning('backend.kind is %r; bots reach replicas only with kind = "arq"', config.backend.kind)
    asyncio.set_event_loop(asyncio.new_event_loop())  # arq's Worker takes the current loop
    build_worker(config).run()
    return 0
