"""The bot class: dependencies in the constructor, start-up work in ``setup_hook``, clean ``close``.

As in discord.py's ``advanced_startup.py`` example, the bot is handed what it uses (the worker, the
stores, the per-guild models, the training manager) instead of building it: ``create_bot`` builds the
real ones from a ``Config``, and a test builds the same bot around its own model loader or worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.backend import GenerationBackend, create_backend
from bot.checks import Refused
from bot.config import TOKEN_ENV, Config
from bot.guild_models import GuildModels, ModelLoader, model_loader
from bot.replies import UserError, send_ephemeral
from bot.results import ResultStore
from bot.store import SubmissionStore
from bot.training import TrainingManager

log = logging.getLogger(__name__)

EXTENSIONS = ("bot.cogs.generate", "bot.cogs.training")
SHUTDOWN_GRACE_S = 5.0


class EmojiBot(commands.Bot):
    """Serves ``/emoji`` and ``/emoji-train``; the model lives in ``self.worker``'s thread."""

    def __init__(
        self,
        config: Config,
        *,
        worker: GenerationBackend,
        results: ResultStore,
        training_store: SubmissionStore,
        guild_models: GuildModels,
        trainer: TrainingManager,
    ) -> None:
        intents = discord.Intents.default()  # guilds + emojis_and_stickers; nothing privileged
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **shard_options(config),
        )
        self.config = config
        self.worker = worker
        self.results = results
        self.training_store = training_store
        self.guild_models = guild_models
        self.trainer = trainer
        self.inflight: set[asyncio.Task[object]] = set()  # handlers owing a user an answer
        self.tree.on_error = self.on_app_command_error

    async def setup_hook(self) -> None:
        await self.worker.start()  # loads the base model; a bad checkpoint stops the start here
        await asyncio.to_thread(self.results.open)
        await asyncio.to_thread(self.training_store.open)
        await asyncio.to_thread(self.guild_models.restore)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.config.dev_guild_id is not None:
            guild = discord.Object(id=self.config.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("Synced %d command(s) to development guild %s", len(synced), guild.id)
        else:
            synced = await self.tree.sync()
            log.info("Synced %d global command(s)", len(synced))

    async def on_ready(self) -> None:
        log.info("Ready as %s in %d guild(s)", self.user, len(self.guilds))

    async def close(self) -> None:
        """Fail queued requests first, let their handlers answer, disconnect, then stop training and close
        the stores (a bot started next on the same ``data_dir`` opens them again)."""
        self.worker.stop("The bot is restarting; please try again in a minute.")
        pending = [task for task in self.inflight if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_S)
        await self.worker.close()
        await super().close()
        await self.trainer.close()
        await asyncio.to_thread(self.training_store.close)
        await asyncio.to_thread(self.results.close)

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """The one handler: refusals (a failed check, a ``UserError`` from below) are told to the user as
        they are; anything else is logged and answered with an apology."""
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, (Refused, UserError)):
            await send_ephemeral(interaction, str(cause))
            return
        log.error("Unhandled error in %s", interaction.command, exc_info=error)
        await send_ephemeral(interaction, "Something went wrong on my side. Please try again.")


class ShardedEmojiBot(EmojiBot, commands.AutoShardedBot):
    """``EmojiBot`` on discord.py's ``AutoShardedBot``: ``shard_ids`` of ``shard_count`` shards, one gateway
    connection each, in this one process (a cluster of processes: each its own ``shard_ids``)."""


def shard_options(config: Config) -> dict[str, object]:
    """The client's shard arguments: none unless ``shard_count`` is set (then all, or ``shard_ids``)."""
    if not config.sharded:
        return {}
    options: dict[str, object] = {"shard_count": config.shard_count}
    if config.shard_ids is not None:
        options["shard_ids"] = list(config.shard_ids)
    return options


def create_bot(config: Config | None = None, *, load: ModelLoader | None = None) -> EmojiBot:
    """The bot and its real dependencies, from ``config``; nothing starts until it logs in (``setup_hook``
    loads the model, opens the stores and loads the cogs).

    ``load`` loads a checkpoint (None: the shipped one): the base model in the worker thread, and each
    server's trained model; by default ``model.Generator.load`` on ``config.device``.
    """
    config = config or Config()
    load = load or model_loader(config.device)
    worker, load = create_backend(config, load)  # [backend]: this process's thread, or arq replicas
    training_store = SubmissionStore(config.data_dir)
    guild_models = GuildModels(training_store, worker, load, cache_size=config.guild_model_cache)
    bot_class = ShardedEmojiBot if config.sharded else EmojiBot
    return bot_class(
        config,
        worker=worker,
        results=ResultStore(config.data_dir),
        training_store=training_store,
        guild_models=guild_models,
        trainer=TrainingManager(config, training_store, guild_models),
    )


# discord.py warnings that say nothing about this bot: voice is never used (so neither PyNaCl nor davey
# is needed), and SimCord's compatibility probe builds a client without the guilds intent (ours has it).
IRRELEVANT_WARNINGS = {
    "discord.client": (
        "PyNaCl is not installed, voice will NOT be supported",
        "davey is not installed, voice will NOT be supported",
    ),
    "discord.state": ("Guilds intent seems to be disabled. This may cause state related issues.",),
}

TOKEN_REJECTED = (
    "emoji-bot: Discord rejected the bot token (401 Unauthorized); get a new one at "
    "https://discord.com/developers/applications (your app -> Bot -> Reset Token) "
    f"and set {TOKEN_ENV} or `token` in config.toml (docs/discord-setup.md)"
)


class _DropMessages(logging.Filter):
    """Drops records whose message template is one of ``messages``; everything else passes."""

    def __init__(self, messages: tuple[str, ...]) -> None:
        super().__init__()
        self.messages = frozenset(messages)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.messages


def setup_logging(level: str) -> None:
    """discord.py's log handler at ``level`` (its colours in a terminal), minus the irrelevant warnings."""
    discord.utils.setup_logging(level=logging.getLevelName(level))
    for name, messages in IRRELEVANT_WARNINGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):  # once, even if called again
            logger.addFilter(_DropMessages(messages))


def connect_failure(error: OSError) -> str:
    """Why a connection failed, in words: "Connection refused", "Name or service not known"."""
    if isinstance(error, socket.gaierror) or not error.errno:
        return str(error.strerror or error)
    return os.strerror(error.errno)


def run(config: Config) -> int:
    """Run until interrupted; returns the exit status. Failing to log in is one line, not a traceback."""
    setup_logging(config.log_level)
    bot = create_bot(config)
    assert config.token is not None
    try:
        bot.run(config.token, log_handler=None)
    except discord.LoginFailure:
        print(TOKEN_REJECTED, file=sys.stderr)
        return 2
    except aiohttp.ClientConnectorError as exc:  # DNS, refused, unreachable, TLS: OSError underneath
        reason = connect_failure(exc.os_error)
        print(
            f"emoji-bot: cannot reach Discord at {exc.host}:{exc.port} ({reason}); "
            "check the network connection (proxy, firewall) and try again",
            file=sys.stderr,
        )
        return 1
    except aiohttp.ClientError as exc:  # the connection dropped mid-login, a server timeout
        print(f"emoji-bot: the connection to Discord failed ({exc or type(exc).__name__})", file=sys.stderr)
        return 1
    except (discord.DiscordServerError, discord.GatewayNotFound) as exc:  # Discord's side is down
        print(
            f"emoji-bot: Discord is not answering right now ({exc}); try again in a few minutes",
            file=sys.stderr,
        )
        return 1
    return 0
