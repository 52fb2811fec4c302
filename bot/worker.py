"""The generation worker: one thread owns the model, so the event loop never runs model code.

Requests arrive from the event loop (``submit``), wait in a bounded FIFO, are generated in batches
(up to ``max_batch`` requests, waiting ``batch_wait_ms`` for batch mates) and are handed back through
``loop.call_soon_threadsafe`` resolving an asyncio future the handler awaits. Batching happens in the
thread, not in an asyncio consumer task: a task that waits forever would keep SimCord (and any
"wait for all tasks" shutdown) from ever settling.

The worker routes each request to its guild's generator, with the base generator as fallback: a model
set for that key (``set_generator``: a replica's table) or else its router's (``route_guilds``), which is
``bot.guild_models.GuildModels``: it decides which model serves a server and loads a server's model on
its first request, in this thread, so the event loop never loads one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bot.handoff import set_exception, set_result, to_loop

if TYPE_CHECKING:
    from PIL import Image

    from model import Drawing

log = logging.getLogger(__name__)


class GeneratorLike(Protocol):
    """What the bot needs from ``model.Generator`` (fakes in unit tests implement the same)."""

    name: str
    device: str

    def clean_text(self, text: str) -> str: ...

    def draw(self, jobs: Sequence[tuple[str, int, int]]) -> list[Drawing]: ...


class WorkerError(RuntimeError):
    """Base for failures the user should see explained rather than as a traceback."""


class QueueFull(WorkerError):
    """The bounded queue is full; ``retry_after`` is a rough estimate in seconds."""

    def __init__(self, pending: int, retry_after: float) -> None:
        super().__init__(f"queue full ({pending} requests waiting)")
        self.pending = pending
        self.retry_after = retry_after


class WorkerStopped(WorkerError):
    """The worker shut down before (or while) the request ran."""


class DeadlineExceeded(WorkerError):
    """Still waiting or generating at its deadline (so the user is told before the token dies)."""


class WorkerNotStarted(WorkerError):
    """``submit`` before ``start``: the model is not loaded yet."""


@dataclass(frozen=True)
class Generation:
    """What one request produced: the model's ``Drawing`` as it came (images, tag, mashup parts) and the
    name of the model that drew it (a redraw by another model would not be the same image)."""

    drawing: Drawing
    model_name: str

    @property
    def images(self) -> list[Image.Image]:
        """The candidates, RGBA 72×72."""
        return self.drawing.images


@dataclass(eq=False)
class _Request:
    text: str
    count: int
    seed: int
    guild_id: int | None
    future: asyncio.Future[Generation]
    loop: asyncio.AbstractEventLoop
    deadline: float | None = None  # time.perf_counter() instant
    cancelled: bool = False  # withdrawn, expired or failed: the worker drops its result
    submitted: float = field(default_factory=time.perf_counter)


@dataclass(eq=False)
class Ticket:
    """A submitted request: await ``future`` for the result; ``ahead`` is its queue position at submission."""

    future: asyncio.Future[Generation]
    ahead: int
    estimated_wait_s: float
    _request: _Request
    _worker: GenerationWorker

    def cancel(self) -> None:
        """Withdraw the request (e.g. the interaction is about to expire); the worker skips it."""
        self._worker._cancel(self._request)

    def position(self) -> int:
        """How many requests are still ahead of this one (0 = generating or next)."""
        return self._worker._position(self._request)


class GenerationWorker:
    """Owns the model in one thread and serves batched generation requests to the event loop."""

    def __init__(
        self,
        load: Callable[[], GeneratorLike],
        *,
        max_queue: int = 64,
        max_batch: int = 8,
        batch_wait_ms: int = 15,
    ) -> None:
        self._load = load
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_ms / 1000
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # wakes the generation thread
        self._watch = threading.Condition(self._lock)  # wakes the deadline watchdog
        self._deadlines: list[tuple[float, int, _Request]] = []
        self._sequence = itertools.count()
        self._queue: collections.deque[_Request] = collections.deque()
        self._running: list[_Request] = []
        self._stopping = False
        self._stop_reason = "The bot is shutting down."
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._base: GeneratorLike | None = None
        self._guild_generators: dict[int, GeneratorLike] = {}
        self._router: Callable[[int], GeneratorLike | None] | None = None
        self._seconds_per_request = 0.25  # moving estimate for queue-wait hints
        self.requests_done = 0

    # ----------------------------------------------------------------- lifecycle (event loop side)

    async def start(self) -> None:
        """Start the thread and wait until it has loaded the model; a load error is raised here."""
        if self._thread is not None:
            raise RuntimeError("worker already started")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(loop, ready), name="generation-worker", daemon=True
        )
        self._thread.start()
        self._watchdog = threading.Thread(target=self._expire, name="generation-deadlines", daemon=True)
        self._watchdog.start()
        await ready

    def stop(self, reason: str = "The bot is shutting down.") -> None:
        """Fail everything pending with ``WorkerStopped`` and tell the thread to exit. Safe from any thread.

        A batch already inside the model finishes, but its requests are failed now so every user gets
        their answer before the bot disconnects.
        """
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._stop_reason = reason
            doomed = [r for r in (*self._queue, *self._running) if not r.cancelled]
            for request in doomed:
                request.cancelled = True
            self._queue.clear()
            self._deadlines.clear()
            self._cond.notify_all()
            self._watch.notify_all()
        for request in doomed:
            to_loop(request.loop, set_exception, request.future, WorkerStopped(reason))
        if doomed:
            log.info("Worker stopping: failed %d pending request(s)", len(doomed))

    async def close(self, timeout: float = 10.0) -> None:
        """``stop`` and wait for the thread to finish its current batch, without blocking the loop."""
        self.stop()
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, timeout)
            if thread.is_alive():
                log.warning("Generation thread still busy after %.0f s; leaving it (daemon)", timeout)

    def join(self, timeout: float | None = None) -> None:
        """Blocking join, for synchronous teardown (tests, atexit)."""
        for thread in (self._thread, self._watchdog):
            if thread is not None:
                thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    # ----------------------------------------------------------------- models

    @property
    def base(self) -> GeneratorLike:
        if self._base is None:
            raise WorkerNotStarted("the model is not loaded yet")
        return self._base

    def generator_for(self, guild_id: int | None) -> GeneratorLike:
        """This guild's model, or the base model when it has none. May load the guild's model (the
        router's first use of it): called by the generation thread, never on the event loop."""
        if guild_id is not None:
            generator = self._guild_generators.get(guild_id)
            if generator is None and self._router is not None:
                generator = self._router(guild_id)
            if generator is not None:
                return generator
        return self.base

    def set_generator(self, guild_id: int, generator: GeneratorLike | None) -> None:
        """Set the model for one key (None: back to the router, then base), ahead of the router.
        Requests already in a batch keep their model."""
        with self._cond:
            if generator is None:
                self._guild_generators.pop(guild_id, None)
            else:
                self._guild_generators[guild_id] = generator

    def route_guilds(self, router: Callable[[int], GeneratorLike | None]) -> None:
        """Ask ``router`` for each request's guild model (None: the base model). Requests already in a
        batch keep the model they were given."""
        self._router = router

    def clean_text(self, text: str) -> str:
        """Normalise user text with the base model's rules; raises ``model.EmptyTextError``."""
        return self.base.clean_text(text)

    # ----------------------------------------------------------------- requests (event loop side)

    @property
    def pending(self) -> int:
        """Requests waiting or generating."""
        with self._cond:
            return len(self._queue) + len(self._running)

    def estimate_wait(self, ahead: int) -> float:
        """Rough seconds until a request with ``ahead`` requests in front of it is done."""
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
        """Queue one request; call from the event loop. Raises ``QueueFull`` or ``WorkerStopped`` at once.

        With ``deadline_s`` the future fails with ``DeadlineExceeded`` that many (real) seconds from now
        if the result is not ready, so the handler can still apologise while its token is alive.
        """
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._stopping or self._thread is None:
                raise WorkerStopped(self._stop_reason if self._stopping else "the worker is not running")
            ahead = len(self._queue) + len(self._running)
            if ahead >= self.max_queue:
                raise QueueFull(ahead, retry_after=max(5.0, self.estimate_wait(ahead)))
            request = _Request(text, count, seed, guild_id, loop.create_future(), loop)
            self._queue.append(request)
            self._cond.notify()
            if deadline_s is not None:
                request.deadline = time.perf_counter() + deadline_s
                heapq.heappush(self._deadlines, (request.deadline, next(self._sequence), request))
                self._watch.notify()
        return Ticket(request.future, ahead, self.estimate_wait(ahead), request, self)

    def _cancel(self, request: _Request) -> None:
        with self._cond:
            request.cancelled = True
            with contextlib.suppress(ValueError):  # already generating: its result is dropped
                self._queue.remove(request)
        request.future.cancel()

    def _position(self, request: _Request) -> int:
        with self._cond:
            if request in self._running:
                return 0
            try:
                return len(self._running) + self._queue.index(request)
            except ValueError:
                return 0

    # ----------------------------------------------------------------- the threads

    def _expire(self) -> None:
        """Watchdog thread: fail requests at their deadline, even while the model is busy with a batch."""
        with self._lock:
            while not self._stopping:
                now = time.perf_counter()
                while self._deadlines and self._deadlines[0][0] <= now:
                    _, _, request = heapq.heappop(self._deadlines)
                    if request.cancelled or request.future.done():
                        continue
                    request.cancelled = True
                    with contextlib.suppress(ValueError):  # generating: its result will be dropped
                        self._queue.remove(request)
                    error = DeadlineExceeded(f"not ready after {now - request.submitted:.1f} s")
                    to_loop(request.loop, set_exception, request.future, error)
                timeout = self._deadlines[0][0] - now if self._deadlines else None
                self._watch.wait(timeout)

    def _run(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            self._base = self._load()
        except BaseException as exc:  # reported to start(), which re-raises
            log.exception("Could not load the model")
            to_loop(loop, set_exception, ready, exc)
            return
        log.info("Model loaded: %s on %s", self._base.name, self._base.device)
        to_loop(loop, set_result, ready, None)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._generate(batch)

    def _next_batch(self) -> list[_Request] | None:
        """Block until at least one request is queued, then gather batch mates for ``batch_wait_s``."""
        with self._cond:
            self._running = []
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            deadline = time.perf_counter() + self.batch_wait_s
            while len(self._queue) < self.max_batch and not self._stopping:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._stopping:
                return None
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self._running = list(batch)  # shrinks as requests are answered (``_finish``)
            return batch

    def _generate(self, batch: list[_Request]) -> None:
        started = time.perf_counter()
        by_model: dict[int, tuple[GeneratorLike, list[_Request]]] = {}
        for request in batch:
            generator = self.generator_for(request.guild_id)
            by_model.setdefault(id(generator), (generator, []))[1].append(request)
        for generator, requests in by_model.values():
            jobs = [(r.text, r.count, r.seed) for r in requests]
            try:
                outputs: list[Any] = generator.draw(jobs)
                if len(outputs) != len(jobs):
                    raise RuntimeError(f"draw returned {len(outputs)} drawings for {len(jobs)} jobs")
            except Exception:
                if len(jobs) == 1:
                    log.exception("Generation failed for %r", requests[0].text)
                    outputs = [None]
                else:
                    # Isolate the culprit: one bad request must not fail its batch mates.
                    outputs = [self._generate_one(generator, r) for r in requests]
            for request, drawing in zip(requests, outputs, strict=True):
                self._finish(request, generator, drawing)
        elapsed = time.perf_counter() - started
        self._seconds_per_request = 0.8 * self._seconds_per_request + 0.2 * (elapsed / len(batch))
        self.requests_done += len(batch)

    def _generate_one(self, generator: GeneratorLike, request: _Request) -> Drawing | None:
        try:
            return generator.draw([(request.text, request.count, request.seed)])[0]
        except Exception:
            log.exception("Generation failed for %r", request.text)
            return None

    def _finish(self, request: _Request, generator: GeneratorLike, drawing: Drawing | None) -> None:
        with self._cond:
            with contextlib.suppress(ValueError):  # answered: no longer counted as pending
                self._running.remove(request)
            if request.cancelled:
                return  # withdrawn, expired or already failed by stop()
            request.cancelled = True  # answered: the watchdog must not fail it too
        if drawing is None:
            to_loop(
                request.loop, set_exception, request.future, GenerationFailed("the model raised an error")
            )
            return
        to_loop(request.loop, set_result, request.future, Generation(drawing, generator.name))


class GenerationFailed(WorkerError):
    """The model raised for this request (details are in the log, not shown to users)."""
