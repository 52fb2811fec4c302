"""The distributed backend, bot side: ``/emoji`` requests as arq jobs on Redis, drawn by replicas.

``RemoteBackend`` is the ``GenerationBackend`` the cogs see (``bot.backend``): ``submit`` returns at once
with a ticket whose future resolves to a ``Generation``, exactly as with the in-process worker. Each
request becomes one arq job (its id is the request's) on the deployment's queue; any ``emoji-bot
replica`` (``bot.replica``) takes it, batches it with others in its own ``GenerationWorker`` and pushes
the drawing onto this process's reply list. One thread here runs a private event loop that enqueues the
jobs, waits on the reply list (BLPOP) and times requests out; results reach the bot's loop through
``call_soon_threadsafe``, as the worker thread's do, so nothing long-lived runs on the bot's loop.

A replica that dies mid-job leaves the job's in-progress mark to expire (the job timeout plus a short
grace); then another replica reruns it. Drawing is deterministic in (text, count, seed, model), so the
rerun gives the same images, and the first reply answers the request: later copies are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import pickle
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from bot.handoff import set_exception, set_result, to_loop
from bot.worker import (
    DeadlineExceeded,
    Generation,
    GenerationFailed,
    QueueFull,
    Ticket,
    WorkerNotStarted,
    WorkerStopped,
)
from model.prompt import clean_text as _clean_text

if TYPE_CHECKING:
    from bot.config import BackendConfig
    from bot.worker import GeneratorLike

log = logging.getLogger(__name__)

JOB = "generate"  # the arq function name replicas register
REPLY_TTL_S = 900  # a reply list nobody reads (its bot died) is gone after the interaction tokens are
LISTEN_TIMEOUT_S = 1.0  # BLPOP wakes this often to notice a stop
ENQUEUE_AT_ONCE = 8  # enqueues in flight (each holds a connection: a burst must not open a thousand)
CONNECT_TIMEOUT_S = 10  # arq's default (1 s) fails connections on a busy machine


def redis_settings(settings: BackendConfig) -> RedisSettings:
    """arq's connection settings for ``backend.redis_url`` (bot side and replicas alike)."""
    redis = RedisSettings.from_dsn(settings.redis_url)
    redis.conn_timeout = CONNECT_TIMEOUT_S
    return redis


def replica_key(queue_name: str, name: str = "*") -> str:
    """Where a live replica announces itself (with an expiry it keeps refreshing)."""
    return f"{queue_name}:replica:{name}"


def running_key(queue_name: str, job_id: str) -> str:
    """Which replica is drawing job ``job_id`` right now."""
    return f"{queue_name}:running:{job_id}"


def encode_reply(
    job_id: str, tries: int, replica: str, generation: Generation | None, error: str = ""
) -> bytes:
    """One reply on the wire: the ``Generation`` as it came from the worker, pickled (PIL images pickle as
    their exact pixels; every field of ``model.Drawing`` travels, whatever fields it grows). Redis is as
    trusted as for arq itself, whose jobs are pickles too: keep it private."""
    return pickle.dumps(
        {"id": job_id, "try": tries, "replica": replica, "error": error, "generation": generation},
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def decode_reply(raw: bytes) -> tuple[str, int, Generation | None, str]:
    """(job id, try, the generation or None, error). Unpickling a drawing imports ``model.sample`` (and
    torch) for its class; no model is loaded here."""
    reply = pickle.loads(raw)
    generation = reply["generation"]
    if generation is None and not reply["error"]:
        reply["error"] = "the replica sent no drawing"
    return reply["id"], int(reply["try"]), generation, reply["error"]


@dataclass(frozen=True)
class RemoteModel:
    """A server's model as the bot process knows it with this backend: its file, which the replicas load
    (and cache) themselves. The bot process never loads it."""

    path: Path
    device: str = "replica"

    @property
    def name(self) -> str:
        return f"server model {self.path.name}"

    clean_text = staticmethod(_clean_text)


@dataclass(eq=False)
class _Remote:
    id: str
    text: str
    count: int
    seed: int
    model: str | None
    future: asyncio.Future[Generation]
    loop: asyncio.AbstractEventLoop
    submitted: float = field(default_factory=time.perf_counter)
    timer: asyncio.TimerHandle | None = None


class RemoteBackend:
    """``GenerationBackend`` over an arq queue; see the module docstring."""

    def __init__(self, settings: BackendConfig, *, max_queue: int = 64, max_batch: int = 8) -> None:
        self.settings = settings
        self.max_queue = max_queue  # requests this process may have out at once
        self.max_batch = max_batch  # the replicas' batch size (for the queue-position note)
        self.reply_key = f"{settings.queue_name}:reply:{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self._pending: dict[str, _Remote] = {}
        self._routes: dict[int, RemoteModel] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the backend thread's own loop
        self._pool: ArqRedis | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._enqueueing: asyncio.Semaphore | None = None  # made on the backend loop
        self._stopping = False
        self._stop_reason = "The bot is shutting down."
        self._seconds_per_request = 0.25  # moving estimate from the gaps between answers
        self._last_answer = 0.0
        self.requests_done = 0
        self.reruns = 0  # answers whose job ran more than once (a replica died or timed out)
        self.dropped = 0  # replies nobody waited for any more: a rerun's copy, cancelled or expired

    # ----------------------------------------------------------------- lifecycle (event loop side)

    async def start(self) -> None:
        """Connect to Redis (arq retries a few times); an unreachable server is raised here."""
        if self._thread is not None:
            raise RuntimeError("backend already started")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(loop, ready), name="generation-queue", daemon=True
        )
        self._thread.start()
        await ready

    def stop(self, reason: str = "The bot is shutting down.") -> None:
        """Fail everything pending with ``WorkerStopped``; the thread exits within a second. Any thread."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._stop_reason = reason
            doomed = list(self._pending.values())
            self._pending.clear()
        for request in doomed:
            to_loop(request.loop, set_exception, request.future, WorkerStopped(reason))
        if doomed:
            log.info("Queue backend stopping: failed %d pending request(s)", len(doomed))

    async def close(self, timeout: float = 10.0) -> None:
        self.stop()
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._pool is not None and not self._stopping

    # ----------------------------------------------------------------- models

    def model_ref(self, path: Path | None, base: object = None) -> RemoteModel:
        """``GuildModels``' loader with this backend: checks the file is there; the replicas load it (a
        delta over their own base model: ``base``, this process's, is not needed here)."""
        if path is None:
            raise ValueError("the base model is the replicas' own configured checkpoint")
        path = Path(path).resolve()
        if not path.is_file() or path.stat().st_size == 0:
            raise FileNotFoundError(f"no model file at {path}")
        return RemoteModel(path)

    def set_generator(self, guild_id: int, generator: GeneratorLike | None) -> None:
        """Route a guild's requests to a model file (None: back to the base model)."""
        with self._lock:
            if generator is None:
                self._routes.pop(guild_id, None)
            elif isinstance(generator, RemoteModel):
                self._routes[guild_id] = generator
            else:
                raise TypeError(
                    f"the arq backend routes RemoteModel references, not {type(generator).__name__}"
                )

    def clean_text(self, text: str) -> str:
        """The model's text rules (torch-free); raises ``model.EmptyTextError``."""
        return _clean_text(text)

    # ----------------------------------------------------------------- requests (event loop side)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def estimate_wait(self, ahead: int) -> float:
        return (ahead + 1) * self._seconds_per_request

    def submit(
        self,
        text: str,
        count: int,
        seed: int,
        *,
        guild_id: int | None = None,
        deadline_s: float | None = None,
    ) -> Ticket:
        """Queue one request; raises ``QueueFull``, ``WorkerStopped`` or ``WorkerNotStarted`` at once."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._stopping:
                raise WorkerStopped(self._stop_reason)
            if self._pool is None or self._loop is None:
                raise WorkerNotStarted("the generation queue is not connected yet")
            ahead = len(self._pending)
            if ahead >= self.max_queue:
                raise QueueFull(ahead, retry_after=max(5.0, self.estimate_wait(ahead)))
            route = self._routes.get(guild_id) if guild_id is not None else None
            model = str(route.path) if route is not None else None
            request = _Remote(uuid.uuid4().hex, text, count, seed, model, loop.create_future(), loop)
            self._pending[request.id] = request
            backend_loop = self._loop
        try:
            # A fresh context: the caller's (a bot task's) would carry SimCord's virtual clock over here.
            backend_loop.call_soon_threadsafe(
                self._dispatch, request, deadline_s, context=contextvars.Context()
            )
        except RuntimeError:  # the backend's loop closed meanwhile: stop() has failed or will fail it
            self._fail(request, WorkerStopped(self._stop_reason))
        return Ticket(request.future, ahead, self.estimate_wait(ahead), request, self)  # type: ignore[arg-type]

    def _cancel(self, request: _Remote) -> None:
        """``Ticket.cancel``: forget the request; a reply that still comes is dropped (the job is not
        recalled from the replicas)."""
        self._forget(request)
        request.future.cancel()

    def _position(self, request: _Remote) -> int:
        """``Ticket.position``: requests of this process submitted before it and still unanswered."""
        with self._lock:
            for ahead, pending in enumerate(self._pending.values()):
                if pending is request:
                    return ahead
        return 0

    def _forget(self, request: _Remote) -> bool:
        """Take ``request`` out of the pending table; False if it was already answered or failed."""
        with self._lock:
            return self._pending.pop(request.id, None) is not None

    def _fail(self, request: _Remote, error: Exception) -> None:
        if self._forget(request):
            to_loop(request.loop, set_exception, request.future, error)

    # ----------------------------------------------------------------- the thread and its loop

    def _run(self, bot_loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(bot_loop, ready))
        finally:
            loop.close()

    async def _main(self, bot_loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        settings = self.settings
        try:
            pool = await create_pool(redis_settings(settings), default_queue_name=settings.queue_name)
            replicas = [key async for key in pool.scan_iter(match=replica_key(settings.queue_name))]
        except Exception as exc:  # reported to start(), which raises it
            log.error("Cannot reach Redis at %s: %s", settings.redis_url, exc)
            to_loop(bot_loop, set_exception, ready, WorkerStopped(f"cannot reach Redis: {exc}"))
            return
        if not replicas:
            log.warning("No replica is serving %s yet: /emoji waits until one starts", settings.queue_name)
        else:
            log.info("Generation queue %s: %d replica(s) live", settings.queue_name, len(replicas))
        self._enqueueing = asyncio.Semaphore(ENQUEUE_AT_ONCE)
        with self._lock:
            self._loop, self._pool = asyncio.get_running_loop(), pool
        to_loop(bot_loop, set_result, ready, None)
        try:
            await self._listen(pool)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):  # Redis may be what went away
                await pool.delete(self.reply_key)
                await pool.aclose()
            self._pool = None

    def _dispatch(self, request: _Remote, deadline_s: float | None) -> None:
        """On the backend loop: enqueue the job and arm the request's deadline."""
        if deadline_s is not None:
            request.timer = asyncio.get_running_loop().call_later(deadline_s, self._expire, request)
        task = asyncio.get_running_loop().create_task(self._enqueue(request, deadline_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _enqueue(self, request: _Remote, deadline_s: float | None) -> None:
        job = {
            "reply_to": self.reply_key,
            "text": request.text,
            "count": request.count,
            "seed": request.seed,
            "model": request.model,
        }
        assert self._pool is not None and self._enqueueing is not None
        try:
            async with self._enqueueing:
                if request.id not in self._pending:  # cancelled or expired while waiting its turn
                    return
                await self._pool.enqueue_job(
                    JOB, job, _job_id=request.id, _queue_name=self.settings.queue_name, _expires=deadline_s
                )
        except Exception:
            log.exception("Could not queue request %s", request.id)
            self._fail(request, GenerationFailed("the generation queue is unreachable"))

    def _expire(self, request: _Remote) -> None:
        waited = time.perf_counter() - request.submitted
        self._fail(request, DeadlineExceeded(f"no replica answered in {waited:.1f} s"))

    async def _listen(self, pool: ArqRedis) -> None:
        while not self._stopping:
            try:
                first = await pool.blpop([self.reply_key], timeout=LISTEN_TIMEOUT_S)
                if first is None:
                    continue
                rest = await pool.lpop(self.reply_key, 256) or []
            except Exception:
                log.exception("Lost the reply list %s; retrying in 1 s", self.reply_key)
                await asyncio.sleep(1)
                continue
            for raw in (first[1], *rest):
                self._answer(raw)

    def _answer(self, raw: bytes) -> None:
        try:
            job_id, tries, generation, error = decode_reply(raw)
        except Exception:  # a reply from another version, or not ours at all
            log.exception("Dropped a malformed reply")
            return
        with self._lock:
            request = self._pending.pop(job_id, None)
            if request is None:
                self.dropped += 1
                return
            self.requests_done += 1
            if tries > 1:
                self.reruns += 1
            now = time.perf_counter()
            if self._pending and self._last_answer:
                gap = min(now - self._last_answer, 60.0)
                self._seconds_per_request = 0.9 * self._seconds_per_request + 0.1 * gap
            self._last_answer = now
        if request.timer is not None:
            request.timer.cancel()
        if generation is None:
            log.error("Replica failed request %s: %s", job_id, error)
            to_loop(request.loop, set_exception, request.future, GenerationFailed(error))
        else:
            to_loop(request.loop, set_result, request.future, generation)
