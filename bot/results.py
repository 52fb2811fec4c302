"""What the buttons under a posted emoji need after a restart: the request, and what was saved from it.

A result's images are not stored: the same text, seed and model give the same bytes, so a button on a
message from before a restart redraws them. What is stored is the request (a small row per ``/emoji``)
and each save (one server emoji and one sticker per image at most, enforced by the primary key), so a
double click or a click after a restart cannot add the same emoji twice.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from bot.sqlite import SqliteStore

DB_NAME = "results.sqlite3"
RETENTION_S = 90 * 24 * 3600  # buttons on older results say the result is gone

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id           INTEGER PRIMARY KEY,
    guild_id     INTEGER,                 -- NULL in DMs
    requester_id INTEGER NOT NULL,
    text         TEXT    NOT NULL,
    seed         INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    private      INTEGER NOT NULL,
    model_name   TEXT    NOT NULL,        -- a redraw by another model would not be the same image
    created_at   REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS saves (
    result_id INTEGER NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    image     INTEGER NOT NULL,           -- index of the saved candidate
    kind      TEXT    NOT NULL CHECK (kind IN ('emoji', 'sticker')),
    label     TEXT    NOT NULL,           -- what the user is shown, e.g. ":chukhahae:"
    saved_by  INTEGER NOT NULL,
    saved_at  REAL    NOT NULL,
    PRIMARY KEY (result_id, image, kind)
);
"""


class SaveKind(str, Enum):
    EMOJI = "emoji"
    STICKER = "sticker"


@dataclass(frozen=True)
class ResultRecord:
    """One ``/emoji`` request as posted: enough to redraw its images exactly."""

    id: int
    guild_id: int | None
    requester_id: int
    text: str
    seed: int
    count: int
    private: bool
    model_name: str


class ResultStore(SqliteStore):
    """The ``results`` file under ``data_dir``."""

    schema = SCHEMA
    schema_version = 1
    # One row per /emoji: WAL + NORMAL survives a crash of the bot; a power cut may lose the last few
    # rows, whose buttons then say the result is gone. No fsync on the request path.
    synchronous = "NORMAL"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(Path(data_dir) / DB_NAME)

    def open(self) -> ResultStore:
        super().open()
        with self._tx() as db:  # keeps the file small; old buttons then answer "gone"
            db.execute("DELETE FROM results WHERE created_at < ?", (time.time() - RETENTION_S,))
        return self

    def add(
        self,
        *,
        guild_id: int | None,
        requester_id: int,
        text: str,
        seed: int,
        count: int,
        private: bool,
        model_name: str,
    ) -> ResultRecord:
        with self._tx() as db:
            cursor = db.execute(
                """INSERT INTO results (guild_id, requester_id, text, seed, count, private, model_name,
                       created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (guild_id, requester_id, text, seed, count, int(private), model_name, time.time()),
            )
        assert cursor.lastrowid is not None
        return ResultRecord(cursor.lastrowid, guild_id, requester_id, text, seed, count, private, model_name)

    def get(self, result_id: int) -> ResultRecord | None:
        rows = self._query("SELECT * FROM results WHERE id = ?", (result_id,))
        if not rows:
            return None
        row = rows[0]
        return ResultRecord(
            row["id"],
            row["guild_id"],
            row["requester_id"],
            row["text"],
            row["seed"],
            row["count"],
            bool(row["private"]),
            row["model_name"],
        )

    def saves(self, result_id: int, image: int) -> dict[SaveKind, str]:
        """What was saved from this image so far: kind → label."""
        rows = self._query(
            "SELECT kind, label FROM saves WHERE result_id = ? AND image = ?", (result_id, image)
        )
        return {SaveKind(row["kind"]): row["label"] for row in rows}

    def record_save(self, result_id: int, image: int, kind: SaveKind, label: str, saved_by: int) -> bool:
        """Remember a save; False if this image was already saved as this kind (nothing changes)."""
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO saves (result_id, image, kind, label, saved_by, saved_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (result_id, image, kind.value, label, saved_by, time.time()),
                )
        except sqlite3.IntegrityError:
            return False
        return True
