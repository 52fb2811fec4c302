"""Bot configuration: a frozen dataclass read from TOML, validated once at start-up.

Every default works offline, so ``Config()`` is enough for tests and a first run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

log = logging.getLogger(__name__)

TOKEN_ENV = "DISCORD_TOKEN"
DEFAULT_PATH = Path("config.toml")


class ConfigError(ValueError):
    """A config value is missing, mistyped or out of range; the message names the key."""


BACKENDS = ("thread", "arq")


@dataclass(frozen=True)
class BackendConfig:
    """``[backend]``: where /emoji is drawn. ``thread`` (the default): the model in this process's worker
    thread. ``arq``: a job queue on Redis served by ``emoji-bot replica`` processes (``bot.remote``);
    needs the ``distributed`` extra. docs/scaling.md says when one is not enough."""

    kind: str = "thread"
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "text2emoji:generate"  # every bot process and replica of one deployment shares it
    job_timeout_s: float = 30.0  # a replica gives a job up after this; a dead replica's jobs rerun then
    replica_jobs: int = 16  # jobs one replica holds at once: 2 x max_batch (one batch drawing, one filling)

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise ConfigError(
                f"backend.kind must be one of {', '.join(map(repr, BACKENDS))}, not {self.kind!r}"
            )
        for name in ("redis_url", "queue_name"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"backend.{name} must be a non-empty string, not {value!r}")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"backend.redis_url must start with redis://, rediss:// or unix://, not {self.redis_url!r}"
            )
        object.__setattr__(self, "job_timeout_s", _float("backend.job_timeout_s", self.job_timeout_s, low=1))
        _int("backend.replica_jobs", self.replica_jobs, low=1)


@dataclass(frozen=True)
class Config:
    """Everything the bot reads from ``config.toml``; see ``config.example.toml`` for each option."""

    data_dir: Path = Path("./data")
    checkpoint: Path | None = None  # None: the shipped checkpoints/base.pt
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"
    max_queue: int = 64  # requests waiting or generating; more are told the bot is busy
    max_batch: int = 8  # requests the worker generates in one model call
    batch_wait_ms: int = 15  # how long the worker waits for batch mates once one request is in
    user_cooldown_s: float = 5.0  # per-user pause between generations
    dev_guild_id: int | None = None  # sync commands to this guild only (instant, for development)
    finetune_steps: int | None = None  # None: automatic (used by server training)
    training_max_submissions: int = 500  # training emoji stored per server
    training_max_upload_bytes: int = 2 * 1024 * 1024  # largest image accepted by /emoji-train add
    training_max_name_chars: int = 50  # longest name (the text that will draw it)
    training_max_concurrent_runs: int = 1  # fine-tunes running at once across all servers
    training_progress_interval_s: float = 3.0  # how often the progress message is edited
    guild_model_cache: int = 32  # servers' own models kept loaded (least recently used are unloaded)
    view_timeout_s: float = 600.0  # /emoji-train list/reset buttons are disabled after this
    reply_deadline_s: float = 840.0  # give up before the 15-minute interaction token expires
    log_level: str = "INFO"
    token: str | None = field(default=None, repr=False)  # prefer the DISCORD_TOKEN variable
    shard_count: int | None = None  # set: commands.AutoShardedBot with this many shards in all
    shard_ids: tuple[int, ...] | None = None  # the shards this process runs (None: all of shard_count)
    backend: BackendConfig = field(default_factory=BackendConfig)  # the [backend] section

    def __post_init__(self) -> None:
        self._set("data_dir", _path("data_dir", self.data_dir))
        if self.checkpoint is not None:
            self._set("checkpoint", _path("checkpoint", self.checkpoint) if self.checkpoint != "" else None)
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
        ):
            raise ConfigError(f'device must be "auto", "cpu", "cuda" or "cuda:N", not {self.device!r}')
        _int("max_queue", self.max_queue, low=1)
        _int("max_batch", self.max_batch, low=1)
        _int("batch_wait_ms", self.batch_wait_ms, low=0)
        self._set("user_cooldown_s", _float("user_cooldown_s", self.user_cooldown_s, low=0))
        if self.dev_guild_id is not None:
            _int("dev_guild_id", self.dev_guild_id, low=1)
        if self.finetune_steps is not None:
            _int("finetune_steps", self.finetune_steps, low=1)
        _int("training_max_submissions", self.training_max_submissions, low=1)
        _int("training_max_upload_bytes", self.training_max_upload_bytes, low=1024)
        _int("training_max_name_chars", self.training_max_name_chars, low=1)
        if self.training_max_name_chars > 100:
            raise ConfigError("training_max_name_chars must be at most 100 (the model reads 100 characters)")
        _int("training_max_concurrent_runs", self.training_max_concurrent_runs, low=1)
        _int("guild_model_cache", self.guild_model_cache, low=1)
        self._set(
            "training_progress_interval_s",
            _float("training_progress_interval_s", self.training_progress_interval_s, low=0.1),
        )
        self._set("view_timeout_s", _float("view_timeout_s", self.view_timeout_s, low=1))
        self._set("reply_deadline_s", _float("reply_deadline_s", self.reply_deadline_s, low=0.01))
        if self.reply_deadline_s > 900:
            raise ConfigError(
                "reply_deadline_s must stay under 900 s: the interaction token dies at 15 minutes"
            )
        if not isinstance(self.log_level, str) or logging.getLevelName(self.log_level.upper()) == (
            f"Level {self.log_level.upper()}"
        ):
            raise ConfigError(f"log_level must be a logging level name such as INFO, not {self.log_level!r}")
        self._set("log_level", self.log_level.upper())
        if self.token is not None and (not isinstance(self.token, str) or not self.token.strip()):
            self._set("token", None)
        self._check_shards()
        if not isinstance(self.backend, BackendConfig):
            raise ConfigError(f"backend must be a [backend] section, not {self.backend!r}")

    def _check_shards(self) -> None:
        if self.shard_count is not None:
            _int("shard_count", self.shard_count, low=1)
        if self.shard_ids is None:
            return
        if self.shard_count is None:
            raise ConfigError("shard_ids needs shard_count (the number of shards across all processes)")
        if isinstance(self.shard_ids, (str, bytes)) or not isinstance(self.shard_ids, (list, tuple)):
            raise ConfigError(f"shard_ids must be a list of shard numbers, not {self.shard_ids!r}")
        ids = tuple(self.shard_ids)
        for shard_id in ids:
            _int("shard_ids", shard_id, low=0)
            if shard_id >= self.shard_count:
                raise ConfigError(f"shard_ids: {shard_id} is not below shard_count ({self.shard_count})")
        if not ids or len(set(ids)) != len(ids):
            raise ConfigError(f"shard_ids must be distinct and not empty, not {list(ids)}")
        self._set("shard_ids", ids)

    @property
    def sharded(self) -> bool:
        """Whether the bot connects through discord.py's AutoShardedBot (shard_count is set)."""
        return self.shard_count is not None

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # frozen: normalise once, here


def _path(name: str, value: Any) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{name} must be a path, not {type(value).__name__}")
    return Path(value)


def _int(name: str, value: Any, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if value < low:
        raise ConfigError(f"{name} must be at least {low}, not {value}")


def _float(name: str, value: Any, *, low: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, not {value!r}")
    if not value >= low or value == float("inf"):
        raise ConfigError(f"{name} must be a finite number of at least {low}, not {value}")
    return float(value)


SECTIONS: dict[str, type] = {"backend": BackendConfig}  # TOML tables, each read into its dataclass


def _section(path: Path, name: str, section: type, table: Any) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {name} must be a [{name}] section, not {table!r}")
    unknown = sorted(set(table) - {f.name for f in fields(section)})
    if unknown:
        raise ConfigError(
            f"{path}: unknown option(s) in [{name}]: {', '.join(unknown)}; see config.example.toml"
        )
    try:
        return section(**table)
    except TypeError as exc:
        raise ConfigError(f"[{name}]: {exc}") from exc


def load_config(
    path: str | os.PathLike[str] | None = DEFAULT_PATH, *, env: dict[str, str] | None = None
) -> Config:
    """Read ``path`` (missing file: defaults); ``DISCORD_TOKEN`` from the environment wins over the file.

    Relative paths inside the file are resolved against the file's folder, so the bot finds its data
    wherever it is started from.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if path is not None and Path(path).is_file():
        path = Path(path)
        try:
            with path.open("rb") as fh:
                values = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        known = {f.name for f in fields(Config)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown option(s) {', '.join(unknown)}; see config.example.toml")
        for name, section in SECTIONS.items():
            if name in values:
                values[name] = _section(path, name, section, values[name])
        for key in ("data_dir", "checkpoint"):
            if isinstance(values.get(key), str) and values[key]:
                values[key] = path.parent / Path(values[key]).expanduser()
        log.info("Loaded config from %s", path)
    elif path is not None:
        log.info("No config file at %s; using defaults", path)
    token = env.get(TOKEN_ENV, "").strip()
    if token:
        values["token"] = token
    try:
        return Config(**values)
    except TypeError as exc:  # a wrong type that dataclass construction itself rejects
        raise ConfigError(str(exc)) from exc
