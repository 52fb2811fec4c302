"""The bot class: dependencies in the constructor, start-up work in ``setup_hook``, clean ``close``."""

from __future__ import annotations

import asyncio
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Config
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


def run(config: Config) -> None:
    """Run until interrupted; logging is set up by discord.py's helper at ``config.log_level``."""
    discord.utils.setup_logging(level=logging.getLevelName(config.log_level))
    bot = create_bot(config)
    assert config.token is not None
    bot.run(config.token, log_handler=None)
