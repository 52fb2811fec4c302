"""One SQLite file per store: WAL, ``synchronous=FULL``, a versioned schema and one locked connection.

Shared by the training data (``bot.store``) and the posted results behind the buttons (``bot.results``),
so both get the same crash-safety: what a method returned from is on disk. All methods block: call
them through ``asyncio.to_thread`` from the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class SqliteStore:
    """Subclasses set ``schema`` (idempotent ``CREATE … IF NOT EXISTS``), ``schema_version`` and, if a
    write per request must not wait for the disk, ``synchronous``."""

    schema: str = ""
    schema_version: int = 1
    synchronous: str = "FULL"  # FULL: an acknowledged write survives a power cut, not only a crash

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    def open(self) -> SqliteStore:
        """Create the file and schema (idempotent); refuses a file of another schema version."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        _set_wal(db)
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(self.schema)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            db.execute(f"PRAGMA user_version={self.schema_version}")
        elif version != self.schema_version:
            db.close()
            raise RuntimeError(f"{self.path}: schema version {version}, expected {self.schema_version}")
        self._db = db
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: checks and inserts see the same state)."""
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn().execute(sql, args).fetchall()


def _set_wal(db: sqlite3.Connection, timeout: float = 30.0) -> None:
    """Switch to WAL, retrying: two processes opening a new file at once can get "database is locked" from
    this pragma straight away, without SQLite's busy handler ever waiting (seen in CI)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
