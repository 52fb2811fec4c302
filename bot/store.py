"""Server training data on disk: SQLite (WAL) for submissions and runs, one folder of checkpoints per guild.

Everything a server submits is committed before the user is told it was saved, with
``synchronous=FULL``, so killing the bot at any moment loses nothing that was acknowledged. Runs
left ``running`` by a crash are marked failed at the next start-up (``recover``), and the guild
keeps the model of its last successful run: the ``models`` table only ever points at a checkpoint
that was completely written (checkpoints are written to a temp file and renamed).

File paths are built from integer ids only, never from anything a user typed. All methods block:
call them through ``asyncio.to_thread`` from the event loop. One connection, guarded by a lock, is
shared by the event loop's helper threads and the training thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from discord.utils import escape_markdown

from bot.replies import UserError
from bot.sqlite import SqliteStore
from bot.validation import NormalisedImage
from model.prompt import name_key  # torch-free; the key fine-tuning groups names by too

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DB_NAME = "training.sqlite3"
MODELS_DIR = "guild_models"
INTERRUPTED = "interrupted: the bot stopped while this run was training"
ALREADY_TRAINING = (
    "This server is already training. Follow it with `/emoji-train status`, "
    "or stop it with `/emoji-train cancel`."
)
RESET_WHILE_TRAINING = "A training run started meanwhile; `/emoji-train cancel` it first. Nothing changed."

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    name_key        TEXT    NOT NULL,            -- casefolded name: one per guild
    aliases         TEXT    NOT NULL DEFAULT '[]',  -- JSON list (e.g. the custom emoji's own name)
    png             BLOB    NOT NULL,            -- normalised 72x72 RGBA PNG
    original_sha256 TEXT    NOT NULL,
    pixels_sha256   TEXT    NOT NULL,            -- of the normalised pixels: one per guild
    author_id       INTEGER NOT NULL,
    created_at      REAL    NOT NULL,
    source          TEXT    NOT NULL,            -- 'upload' or 'import'
    source_emoji_id INTEGER,                     -- the imported custom emoji
    UNIQUE (guild_id, name_key),
    UNIQUE (guild_id, pixels_sha256)
);
CREATE INDEX IF NOT EXISTS submissions_by_guild ON submissions (guild_id, name_key);

CREATE TABLE IF NOT EXISTS runs (
    id            INTEGER PRIMARY KEY,
    guild_id      INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    requested_by  INTEGER NOT NULL,
    started_at    REAL    NOT NULL,
    finished_at   REAL,
    submissions   INTEGER NOT NULL,
    total_steps   INTEGER NOT NULL,
    steps         INTEGER NOT NULL DEFAULT 0,
    loss          REAL,
    seconds       REAL,
    metrics       TEXT    NOT NULL DEFAULT '{}',
    error         TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_running_run_per_guild ON runs (guild_id) WHERE status = 'running';

CREATE TABLE IF NOT EXISTS models (
    guild_id   INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    updated_at REAL    NOT NULL
);
"""


class RunStatus(str, Enum):
    """A training run's state: ``running`` until the supervisor (or ``recover``) closes it with an outcome."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:  # "succeeded" in messages and logs, not "RunStatus.SUCCEEDED"
        return self.value


OUTCOMES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class StoreError(UserError):
    """The store refused a change; ``str(error)`` is the message for the user."""


class DuplicateName(StoreError):
    pass


class DuplicateImage(StoreError):
    pass


class LimitReached(StoreError):
    pass


class RunAlreadyActive(StoreError):
    """This guild has a run ``running``: a second may not start, and its model may not be reset."""


@dataclass(frozen=True)
class Submission:
    id: int
    guild_id: int
    name: str
    aliases: list[str]
    png: bytes
    original_sha256: str
    pixels_sha256: str
    author_id: int
    created_at: float
    source: str
    source_emoji_id: int | None


@dataclass(frozen=True)
class Run:
    id: int
    guild_id: int
    status: RunStatus
    requested_by: int
    started_at: float
    finished_at: float | None
    submissions: int
    total_steps: int
    steps: int
    loss: float | None
    seconds: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _id(value: int) -> int:
    """An id safe to put in a path: a positive int, never a string."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"not a Discord/SQLite id: {value!r}")
    return value


class SubmissionStore(SqliteStore):
    """Submissions, training runs and per-guild model checkpoints under ``data_dir``."""

    schema = SCHEMA
    schema_version = SCHEMA_VERSION

    def __init__(self, data_dir: Path) -> None:
        super().__init__(Path(data_dir) / DB_NAME)
        self.data_dir = Path(data_dir)
        self.models_dir = self.data_dir / MODELS_DIR

    def open(self) -> SubmissionStore:
        """Create the folders and schema (idempotent)."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        super().open()
        return self

    # ----------------------------------------------------------------- submissions

    def add(
        self,
        guild_id: int,
        name: str,
        image: NormalisedImage,
        author_id: int,
        *,
        limit: int,
        aliases: list[str] | None = None,
        source: str = "upload",
        source_emoji_id: int | None = None,
    ) -> Submission:
        """Store one training emoji; raises DuplicateName, DuplicateImage or LimitReached."""
        key = name_key(name)
        with self._tx() as db:
            count = db.execute("SELECT COUNT(*) FROM submissions WHERE guild_id = ?", (guild_id,)).fetchone()[
                0
            ]
            if count >= limit:
                raise LimitReached(
                    f"This server already has {count} training emoji (the limit is {limit}). "
                    "Remove some with `/emoji-train remove` first."
                )
            same_name = db.execute(
                "SELECT name FROM submissions WHERE guild_id = ? AND name_key = ?", (guild_id, key)
            ).fetchone()
            if same_name is not None:
                raise DuplicateName(
                    f"There is already a training emoji named **{escape_markdown(same_name['name'])}**. "
                    "Pick another name, or remove that one first."
                )
            same_image = db.execute(
                """SELECT name FROM submissions
                   WHERE guild_id = ? AND (pixels_sha256 = ? OR original_sha256 = ?)""",
                (guild_id, image.pixels_sha256, image.original_sha256),
            ).fetchone()
            if same_image is not None:
                raise DuplicateImage(
                    f"That image is already stored as **{escape_markdown(same_image['name'])}**. "
                    "Each image can be used once."
                )
            now = time.time()
            cursor = db.execute(
                """INSERT INTO submissions (guild_id, name, name_key, aliases, png, original_sha256,
                       pixels_sha256, author_id, created_at, source, source_emoji_id)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    guild_id,
                    name,
                    key,
                    json.dumps(aliases or [], ensure_ascii=False),
                    image.png,
                    image.original_sha256,
                    image.pixels_sha256,
                    author_id,
                    now,
                    source,
                    source_emoji_id,
                ),
            )
            submission_id = cursor.lastrowid
        assert submission_id is not None
        return Submission(
            submission_id,
            guild_id,
            name,
            aliases or [],
            image.png,
            image.original_sha256,
            image.pixels_sha256,
            author_id,
            now,
            source,
            source_emoji_id,
        )

    def count(self, guild_id: int) -> int:
        return self._query("SELECT COUNT(*) FROM submissions WHERE guild_id = ?", (guild_id,))[0][0]

    def page(self, guild_id: int, offset: int, limit: int) -> list[Submission]:
        """Submissions in name order (what /emoji-train list shows)."""
        rows = self._query(
            "SELECT * FROM submissions WHERE guild_id = ? ORDER BY name_key, id LIMIT ? OFFSET ?",
            (guild_id, limit, offset),
        )
        return [self._submission(r) for r in rows]

    def all(self, guild_id: int) -> list[Submission]:
        rows = self._query("SELECT * FROM submissions WHERE guild_id = ? ORDER BY id", (guild_id,))
        return [self._submission(r) for r in rows]

    def names(self, guild_id: int, containing: str = "", limit: int = 25) -> list[str]:
        """Names whose key contains ``containing``'s key, oldest first: what autocomplete offers, without
        reading any image."""
        rows = self._query(
            "SELECT name FROM submissions WHERE guild_id = ? AND instr(name_key, ?) > 0 ORDER BY id LIMIT ?",
            (guild_id, name_key(containing), limit),
        )
        return [r["name"] for r in rows]

    def get(self, guild_id: int, name: str) -> Submission | None:
        rows = self._query(
            "SELECT * FROM submissions WHERE guild_id = ? AND name_key = ?", (guild_id, name_key(name))
        )
        return self._submission(rows[0]) if rows else None

    def remove(self, guild_id: int, name: str) -> Submission | None:
        """Delete by name (case-insensitive); the removed submission, or None."""
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM submissions WHERE guild_id = ? AND name_key = ?", (guild_id, name_key(name))
            ).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM submissions WHERE id = ?", (row["id"],))
        return self._submission(row)

    def imported_emoji_ids(self, guild_id: int) -> set[int]:
        rows = self._query(
            "SELECT source_emoji_id FROM submissions WHERE guild_id = ? AND source_emoji_id IS NOT NULL",
            (guild_id,),
        )
        return {r[0] for r in rows}

    @staticmethod
    def _submission(row: sqlite3.Row) -> Submission:
        return Submission(
            id=row["id"],
            guild_id=row["guild_id"],
            name=row["name"],
            aliases=json.loads(row["aliases"]),
            png=row["png"],
            original_sha256=row["original_sha256"],
            pixels_sha256=row["pixels_sha256"],
            author_id=row["author_id"],
            created_at=row["created_at"],
            source=row["source"],
            source_emoji_id=row["source_emoji_id"],
        )

    # ----------------------------------------------------------------- runs

    def start_run(self, guild_id: int, requested_by: int, *, submissions: int, total_steps: int) -> Run:
        """Record a run as ``running``; raises RunAlreadyActive if this guild has one."""
        now = time.time()
        try:
            with self._tx() as db:
                cursor = db.execute(
                    """INSERT INTO runs (guild_id, status, requested_by, started_at, submissions, total_steps)
                       VALUES (?, 'running', ?, ?, ?, ?)""",
                    (guild_id, requested_by, now, submissions, total_steps),
                )
                run_id = cursor.lastrowid
        except sqlite3.IntegrityError as exc:
            raise RunAlreadyActive(ALREADY_TRAINING) from exc
        assert run_id is not None
        return Run(
            run_id,
            guild_id,
            RunStatus.RUNNING,
            requested_by,
            now,
            None,
            submissions,
            total_steps,
            0,
            None,
            None,
        )

    def finish_run(
        self,
        run_id: int,
        status: RunStatus | str,
        *,
        steps: int = 0,
        loss: float | None = None,
        seconds: float | None = None,
        metrics: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Close a run. A ``succeeded`` run also becomes its guild's model, in the same transaction."""
        status = RunStatus(status)
        if status not in OUTCOMES:
            raise ValueError(status)
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT guild_id, status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or row["status"] != "running":
                raise ValueError(f"run {run_id} is not running")
            if status is RunStatus.SUCCEEDED and not self.checkpoint_path(row["guild_id"], run_id).is_file():
                raise FileNotFoundError(self.checkpoint_path(row["guild_id"], run_id))
            db.execute(
                """UPDATE runs SET status = ?, finished_at = ?, steps = ?, loss = ?, seconds = ?,
                       metrics = ?, error = ? WHERE id = ?""",
                (status.value, now, steps, loss, seconds, json.dumps(metrics or {}), error, run_id),
            )
            if status is RunStatus.SUCCEEDED:
                db.execute(
                    """INSERT INTO models (guild_id, run_id, updated_at) VALUES (?, ?, ?)
                       ON CONFLICT (guild_id) DO UPDATE SET run_id = excluded.run_id,
                           updated_at = excluded.updated_at""",
                    (row["guild_id"], run_id, now),
                )

    def run(self, run_id: int) -> Run | None:
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return self._run(rows[0]) if rows else None

    def latest_run(self, guild_id: int) -> Run | None:
        rows = self._query("SELECT * FROM runs WHERE guild_id = ? ORDER BY id DESC LIMIT 1", (guild_id,))
        return self._run(rows[0]) if rows else None

    def runs(self, guild_id: int) -> list[Run]:
        rows = self._query("SELECT * FROM runs WHERE guild_id = ? ORDER BY id", (guild_id,))
        return [self._run(r) for r in rows]

    @staticmethod
    def _run(row: sqlite3.Row) -> Run:
        return Run(
            id=row["id"],
            guild_id=row["guild_id"],
            status=RunStatus(row["status"]),
            requested_by=row["requested_by"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            submissions=row["submissions"],
            total_steps=row["total_steps"],
            steps=row["steps"],
            loss=row["loss"],
            seconds=row["seconds"],
            metrics=json.loads(row["metrics"]),
            error=row["error"],
        )

    # ----------------------------------------------------------------- models

    def checkpoint_path(self, guild_id: int, run_id: int) -> Path:
        """Where run ``run_id`` writes its checkpoint: ints only, so no user text reaches the path."""
        return self.models_dir / str(_id(guild_id)) / f"run-{_id(run_id)}.pt"

    def model_path(self, guild_id: int) -> Path | None:
        """The checkpoint this guild serves (its last successful run since the last reset), or None."""
        rows = self._query("SELECT run_id FROM models WHERE guild_id = ?", (guild_id,))
        return self.checkpoint_path(guild_id, rows[0][0]) if rows else None

    def models(self) -> dict[int, Path]:
        """Every guild's served checkpoint (loaded at start-up)."""
        rows = self._query("SELECT guild_id, run_id FROM models ORDER BY guild_id")
        return {r["guild_id"]: self.checkpoint_path(r["guild_id"], r["run_id"]) for r in rows}

    def forget_model(self, guild_id: int) -> bool:
        """Back to the base model: drop the pointer, then the files. True if there was one.

        Raises RunAlreadyActive while the guild has a run ``running`` (its success would move the pointer).
        """
        with self._tx() as db:
            running = db.execute(
                "SELECT 1 FROM runs WHERE guild_id = ? AND status = 'running'", (guild_id,)
            ).fetchone()
            if running is not None:
                raise RunAlreadyActive(RESET_WHILE_TRAINING)
            removed = db.execute("DELETE FROM models WHERE guild_id = ?", (guild_id,)).rowcount
        self.prune_checkpoints(guild_id)
        return bool(removed)

    def prune_checkpoints(self, guild_id: int | None = None) -> int:
        """Delete checkpoint files no guild serves (old runs, failed runs' leftovers, temp files).

        A guild with a run in progress is skipped: its temp file is being written.
        """
        keep = set(self.models().values())
        busy = {r[0] for r in self._query("SELECT guild_id FROM runs WHERE status = 'running'")}
        folders = (
            [self.models_dir / str(_id(guild_id))]
            if guild_id is not None
            else list(self.models_dir.iterdir())
        )
        removed = 0
        for folder in folders:
            if not folder.is_dir() or not folder.name.isdigit() or int(folder.name) in busy:
                continue
            for path in folder.iterdir():
                if path not in keep and path.is_file():
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    # ----------------------------------------------------------------- start-up

    def recover(self) -> list[Run]:
        """After a crash: runs still ``running`` are marked failed, stray files removed. Returns them."""
        with self._tx() as db:
            rows = db.execute("SELECT * FROM runs WHERE status = 'running'").fetchall()
            db.execute(
                "UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE status = 'running'",
                (time.time(), INTERRUPTED),
            )
        if rows:
            log.warning("Marked %d interrupted training run(s) as failed", len(rows))
        self.prune_checkpoints()
        return [self._run(r) for r in rows]
