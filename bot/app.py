"""The bot class: dependencies in the constructor, start-up work in ``setup_hook``, clean ``close``."""

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

from bot.config import TOKEN_ENV, Config
from bot.replies import send_ephemeral
from bot.worker import GenerationWorker, GeneratorLike

log = logging.getLogger(__name__)

EXTENSIONS = ("bot.cogs.generate", "bot.cogs.training")
SHUTDOWN_GRACE_S = 5.0


def load_generator(config: Config) -> GeneratorLike:
    """Load the model (runs in the worker thread; imported lazily so the bot imports without torch)."""
    from model import Generator

    return Generator.load(config.checkpoint, device=config.device)


class EmojiBot(commands.Bot):
    """Serves ``/emoji``; the model lives in ``self.worker``'s thread."""

    def __init__(self, config: Config) -> None:
        intents = discord.Intents.default()  # guilds + emojis_and_stickers; nothing privileged
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.config = config
        self.worker = GenerationWorker(
            lambda: load_generator(config),
            max_queue=config.max_queue,
            max_batch=config.max_batch,
            batch_wait_ms=config.batch_wait_ms,
        )
        self.inflight: set[asyncio.Task[object]] = set()  # handlers owing a user an answer
        self.tree.on_error = self.on_app_command_error

    async def setup_hook(self) -> None:
        await self.worker.start()
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
        """Fail queued requests first, let their handlers answer, then disconnect."""
        self.worker.stop("The bot is restarting; please try again in a minute.")
        pending = [task for task in self.inflight if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_S)
        await self.worker.close()
        await super().close()

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Last resort: log it and still give the user an answer."""
        log.error("Unhandled error in %s", interaction.command, exc_info=error)
        await send_ephemeral(interaction, "Something went wrong on my side. Please try again.")


def create_bot(config: Config | None = None) -> commands.Bot:
    """Build the bot (nothing starts until it logs in: ``setup_hook`` loads the model and cogs)."""
    return EmojiBot(config or Config())


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
