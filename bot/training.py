"""Running a server's fine-tune without stalling the bot: one child process per run, watched by a thread.

The fine-tune (``model.finetune``) runs in a ``spawn``-ed process limited to one torch thread, so the
event loop and the generation worker keep their cores and ``/emoji`` keeps serving. The child
reports progress over a pipe; a supervisor thread in the bot reads it, records the outcome in the
store and, on success, loads the new server model (a delta over the base) and hands it to
``GuildModels``, which swaps it in for that guild only. Everything about one run (its progress, thread
and process) is one ``RunState``.
The handler that started the run awaits ``RunState.done``, an asyncio future the supervisor
resolves through ``loop.call_soon_threadsafe``, so the progress message's loop ends exactly when the
run does.

Crash safety comes from the store: the run row says ``running`` until the supervisor closes it, the
delta is written to a temp file and renamed, and the guild's model pointer moves only after the new
delta loaded. A bot killed mid-run leaves the row ``running``; ``GuildModels.restore`` marks it failed
and the guild goes on with its previous model. The child watches its parent and stops if the bot dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.handoff import set_result, to_loop
from bot.replies import UserError
from bot.store import ALREADY_TRAINING, Run, RunAlreadyActive, RunStatus, SubmissionStore

if TYPE_CHECKING:
    from bot.config import Config
    from bot.guild_models import GuildModels

log = logging.getLogger(__name__)

CHILD_THREADS = 1
CANCEL_GRACE_S = 30.0  # a cancelled child that has not stopped by then is terminated
PROGRESS_EVERY_S = 0.25  # the child reports at most this often (and always the last step)


class TrainingError(UserError):
    """A run could not start; ``str(error)`` is the message for the user."""


class AlreadyTraining(TrainingError):
    pass


class TooBusy(TrainingError):
    pass


class NothingToTrain(TrainingError):
    pass


@dataclass(eq=False)
class RunState:
    """One run from start to outcome: what the event loop shows, and the thread and process behind it.

    The supervisor thread writes the plain fields (single assignments, safe under the GIL) and
    resolves ``done`` on the loop; handlers only read (and set ``cancel_requested``).
    """

    run: Run
    names: int
    total: int
    done: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop
    phase: str = "starting"  # starting → training → loading → finished
    step: int = 0
    loss: float | None = None
    eta_s: float | None = None
    elapsed_s: float = 0.0
    outcome: RunStatus | None = None  # SUCCEEDED, FAILED or CANCELLED once finished
    error: str | None = None
    seconds: float | None = None
    cancel_requested: bool = False
    thread: threading.Thread | None = None  # the supervisor
    process: multiprocessing.process.BaseProcess | None = None  # the fine-tune, while it runs

    @property
    def guild_id(self) -> int:
        return self.run.guild_id

    @property
    def fraction(self) -> float:
        if self.outcome is RunStatus.SUCCEEDED:
            return 1.0
        return min(1.0, self.step / self.total) if self.total else 0.0


class TrainingManager:
    """Starts, tracks and cancels fine-tunes: one per guild, ``training_max_concurrent_runs`` in all."""

    def __init__(
        self,
        config: Config,
        store: SubmissionStore,
        models: GuildModels,
        *,
        child: Callable[..., None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.models = models
        self._child = child or child_main  # the process's entry point (tests: a stand-in for finetune)
        self._lock = threading.Lock()
        self._active: dict[int, RunState | None] = {}  # None: reserved while starting
        self._closing = False

    # ----------------------------------------------------------------- shutdown

    async def close(self, timeout: float = 10.0) -> None:
        """Cancel every run and wait (off the loop) for the children to go."""
        with self._lock:
            self._closing = True
            states = [s for s in self._active.values() if s is not None]
        for state in states:
            state.cancel_requested = True
        if states:
            await asyncio.to_thread(self._join, states, timeout)

    @staticmethod
    def _join(states: list[RunState], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for state in states:
            if state.thread is not None:
                state.thread.join(max(0.0, deadline - time.monotonic()))
        for state in states:
            process = state.process
            if process is not None and process.is_alive():
                log.warning("Terminating training process %s", process.pid)
                process.terminate()
                process.join(5)

    # ----------------------------------------------------------------- queries

    def active(self, guild_id: int) -> RunState | None:
        with self._lock:
            return self._active.get(guild_id)

    # ----------------------------------------------------------------- runs

    async def start(self, guild_id: int, user_id: int) -> RunState:
        """Begin a run; raises AlreadyTraining, TooBusy or NothingToTrain (nothing recorded then)."""
        with self._lock:
            if self._closing:
                raise TooBusy("I'm restarting right now. Try again in a minute.")
            if guild_id in self._active:
                raise AlreadyTraining(ALREADY_TRAINING)
            if len(self._active) >= self.config.training_max_concurrent_runs:
                raise TooBusy(
                    f"I'm already training {len(self._active)} server model(s), the most I run at once. "
                    "Try again in a few minutes."
                )
            self._active[guild_id] = None  # reserve before awaiting anything
        try:
            state = await self._begin(guild_id, user_id)
        except BaseException:
            with self._lock:
                self._active.pop(guild_id, None)
            raise
        return state

    async def _begin(self, guild_id: int, user_id: int) -> RunState:
        submissions = await asyncio.to_thread(self.store.all, guild_id)
        if not submissions:
            raise NothingToTrain(
                "This server has no training emoji yet. Add some with `/emoji-train add` "
                "or `/emoji-train import` first."
            )
        examples = [(s.name, s.png) for s in submissions]
        total = await asyncio.to_thread(self._total_steps, len(submissions))
        try:
            run = await asyncio.to_thread(
                self.store.start_run, guild_id, user_id, submissions=len(submissions), total_steps=total
            )
        except RunAlreadyActive as exc:  # another bot process on the same data_dir is training it
            raise AlreadyTraining(str(exc)) from exc
        loop = asyncio.get_running_loop()
        state = RunState(run=run, names=len(submissions), total=total, done=loop.create_future(), loop=loop)
        state.thread = threading.Thread(
            target=self._supervise, args=(state, examples), name=f"training-{guild_id}", daemon=True
        )
        with self._lock:
            self._active[guild_id] = state
        state.thread.start()
        log.info(
            "Training run %s started for guild %s (%d emoji, %d steps)",
            run.id,
            guild_id,
            len(examples),
            total,
        )
        return state

    def _total_steps(self, names: int) -> int:
        from model.device import resolve_device
        from model.finetune import auto_steps

        steps = auto_steps(names, resolve_device(self.config.device))
        if self.config.finetune_steps is not None:
            steps = min(steps, self.config.finetune_steps)
        return steps

    def cancel(self, guild_id: int) -> RunState | None:
        """Ask this guild's run to stop (its progress message then says so). None if nothing runs."""
        state = self.active(guild_id)
        if state is not None:
            state.cancel_requested = True
        return state

    # ----------------------------------------------------------------- the supervisor thread

    def _supervise(self, state: RunState, examples: list[tuple[str, bytes]]) -> None:
        guild_id, run_id = state.guild_id, state.run.id
        out = self.store.checkpoint_path(guild_id, run_id)
        outcome: RunStatus = RunStatus.FAILED
        error: str | None = None
        try:
            outcome, error, result = self._run_child(state, examples, out)
            if outcome is RunStatus.SUCCEEDED:
                assert result is not None
                state.phase = "loading"
                generator = self.models.open(out)  # proves the file is whole before anyone is pointed at it
                self.models.promote(
                    guild_id,
                    run_id,
                    generator,
                    steps=int(result["steps"]),
                    loss=float(result["loss"]),
                    seconds=float(result["seconds"]),
                    metrics={"names": result["names"]},
                )
                state.seconds = float(result["seconds"])
            else:
                self.store.finish_run(run_id, outcome, steps=state.step, loss=state.loss, error=error)
        except Exception as exc:  # the run fails, the bot goes on
            log.exception("Training run %s for guild %s failed", run_id, guild_id)
            outcome, error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
            try:
                self.store.finish_run(
                    run_id, RunStatus.FAILED, steps=state.step, loss=state.loss, error=error
                )
            except Exception:
                log.exception("Could not record the failure of run %s", run_id)
        finally:
            try:
                self.store.prune_checkpoints(guild_id)  # old runs' and cancelled runs' files
            except Exception:
                log.warning("Could not prune checkpoints of guild %s", guild_id, exc_info=True)
            state.error = error
            state.outcome = outcome
            state.phase = "finished"
            state.process = None
            with self._lock:
                self._active.pop(guild_id, None)
            to_loop(state.loop, set_result, state.done, None)
            log.info(
                "Training run %s for guild %s: %s%s",
                run_id,
                guild_id,
                outcome.value,
                f" ({error})" if error else "",
            )

    def _run_child(
        self, state: RunState, examples: list[tuple[str, bytes]], out: Path
    ) -> tuple[RunStatus, str | None, dict[str, Any] | None]:
        """Run the child to its end: (outcome, error for the user, finetune's result)."""
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=self._child,
            args=(
                theirs,
                examples,
                str(out),
                str(self.config.checkpoint) if self.config.checkpoint else None,
                state.total,
                self.config.device,
                f"server run {state.run.id}",
            ),
            name=f"text2emoji-finetune-{state.guild_id}",
            daemon=True,
        )
        state.process = process
        process.start()
        theirs.close()
        state.phase = "training"
        cancel_sent_at: float | None = None
        try:
            while True:
                if state.cancel_requested and cancel_sent_at is None:
                    cancel_sent_at = time.monotonic()
                    with contextlib.suppress(OSError):
                        ours.send("cancel")
                if cancel_sent_at is not None and time.monotonic() - cancel_sent_at > CANCEL_GRACE_S:
                    process.terminate()
                    return RunStatus.CANCELLED, None, None
                try:
                    if not ours.poll(0.2):
                        if not process.is_alive() and not ours.poll(0):
                            return RunStatus.FAILED, self._died(process), None
                        continue
                    message = ours.recv()
                except (EOFError, OSError):
                    process.join(5)
                    return RunStatus.FAILED, self._died(process), None
                kind = message[0]
                if kind == "progress":
                    _, state.step, state.total, state.loss, state.elapsed_s, state.eta_s = message
                elif kind == "done":
                    return RunStatus.SUCCEEDED, None, message[1]
                elif kind == "cancelled":
                    return RunStatus.CANCELLED, None, None
                elif kind == "error":
                    return RunStatus.FAILED, message[1], None
        finally:
            ours.close()
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)

    @staticmethod
    def _died(process: multiprocessing.process.BaseProcess) -> str:
        return f"the training process stopped unexpectedly (exit code {process.exitcode})"


# --------------------------------------------------------------------------------------------- child


def child_main(
    conn: Connection,
    examples: list[tuple[str, bytes]],
    out: str,
    base: str | None,
    steps: int,
    device: str,
    label: str,
) -> None:
    """Entry point of the training process: fine-tune, reporting progress; stop on "cancel" or orphaning."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s finetune: %(message)s")
    import torch

    torch.set_num_threads(CHILD_THREADS)
    from PIL import Image

    from model.finetune import FinetuneCancelled, FinetuneProgress, finetune

    parent = os.getppid()
    cancelled = False

    def should_stop() -> bool:
        nonlocal cancelled
        if os.getppid() != parent:  # the bot died: nobody would record this run
            return True
        while conn.poll():
            if conn.recv() == "cancel":
                cancelled = True
        return cancelled

    last_sent = 0.0

    def send(message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError):  # the bot is gone; should_stop() ends the run next step
            conn.send(message)

    def progress(p: FinetuneProgress) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if now - last_sent >= PROGRESS_EVERY_S or p.step == p.total:
            last_sent = now
            send(("progress", p.step, p.total, p.loss, p.elapsed_s, p.eta_s))

    try:
        images = []
        for name, png in examples:
            with Image.open(io.BytesIO(png)) as im:
                images.append((name, im.convert("RGBA")))
        result = finetune(
            images,
            Path(out),
            base=base,
            steps=steps,
            device=device,
            label=label,
            progress=progress,
            should_stop=should_stop,
        )
        send(("done", result))
    except FinetuneCancelled:
        send(("cancelled",))
    except Exception as exc:  # reported to the bot, which tells the user
        logging.getLogger(__name__).exception("fine-tune failed")
        send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
