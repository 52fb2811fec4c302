"""``emoji-bot preview``: the real bot in a simulated Discord server, driven from a local web page.

No token and no Discord application: the bot from ``create_bot`` (same cogs, worker and model) logs in
to SimCord's in-memory Discord, which runs discord.py's own parsers, command tree, views and HTTP layer.
SimCord's bundled preview page (``simcord[preview]``) is the client: a Discord-like channel where the
slash-command composer offers every command in the bot's tree with its string, integer, boolean and
attachment options, buttons call the bot's real callbacks, attachments show inline, and "Viewing as"
switches between the admin and the normal member.

SimCord serves the page on 127.0.0.1 only and refuses requests whose Host (or Origin) is not
127.0.0.1 or localhost on that port; every API call must carry the session key from the printed
URL's fragment.

The simulated clock only moves when told to, so per-user cooldowns are turned off here (they would
never expire) and result buttons never time out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import io
import logging
import os
import re
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.app import create_bot, setup_logging
from bot.config import Config

if TYPE_CHECKING:
    import simcord

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
BOT_NAME = "text2emoji"  # the simulated bot account (SimCord names it "TestBot")
# How long one page action may keep the bot busy. SimCord finishes an action only when every task it
# started is done, so `/emoji-train start` holds the page until training ends; 15 min is the lifetime
# of a real interaction token, the most any command of ours may take anyway.
SETTLE_TIMEOUT_S = 900.0
GUILD_NAME = "text2emoji preview"
CHANNEL_NAME = "emoji-lab"
SHEET_CELL = 136  # px per emoji in the /server-emoji sheet (128 px emoji + margin)
SHEET_COLUMNS = 8
_EMOJI_ROUTE = re.compile(r"/guilds/(\d+)/emojis$")
_DATA_URI = re.compile(r"data:image/[a-z+]+;base64,(.+)", re.DOTALL)


class PreviewError(RuntimeError):
    """The preview could not start (port taken, missing ``simcord[preview]``); the message says why."""


@dataclasses.dataclass(frozen=True)
class World:
    """The ready-made server: one channel, an admin and a normal member."""

    guild: Any  # simcord GuildHandle
    channel: Any  # simcord ChannelHandle
    admin: Any  # simcord MemberActor with the Administrator role
    member: Any  # simcord MemberActor with @everyone's permissions only


def preview_config(config: Config, data_dir: Path) -> Config:
    """The user's config, adjusted for a throwaway simulated server.

    ``data_dir`` is a temporary folder so server training in the preview never touches real data;
    commands sync globally because the development guild does not exist in the simulation; the
    cooldown is off because the simulated clock stands still between actions.
    """
    return dataclasses.replace(config, data_dir=data_dir, dev_guild_id=None, user_cooldown_s=0.0, token=None)


def build_world(env: simcord.Env) -> World:
    """Create the guild, its channel and the two members the page can act as."""
    guild = env.create_guild(GUILD_NAME)
    admins = guild.create_role("Admin", permissions=discord.Permissions(administrator=True))
    channel = guild.create_text_channel(CHANNEL_NAME)
    admin = guild.add_member(env.create_user("admin", global_name="Admin"), roles=[admins])
    member = guild.add_member(env.create_user("member", global_name="Member"))
    return World(guild, channel, admin, member)


class EmojiShelf:
    """Images of the custom emoji the bot added, so the page can show them.

    SimCord keeps no bytes for custom emoji, but its request log keeps what the bot uploaded
    (``POST /guilds/{id}/emojis`` with a data URI); the newest upload under a name wins.
    """

    def __init__(self) -> None:
        self.env: simcord.Env | None = None
        self.preview: Any = None

    def images(self, guild_id: int) -> dict[str, bytes]:
        """Emoji name → PNG bytes for everything the bot uploaded to ``guild_id``."""
        found: dict[str, bytes] = {}
        if self.env is None:
            return found
        for request in self.env.http_requests:
            route = _EMOJI_ROUTE.search(request.path)
            if request.method != "POST" or route is None or int(route.group(1)) != guild_id:
                continue
            body = request.json if isinstance(request.json, dict) else {}
            match = _DATA_URI.match(str(body.get("image", "")))
            if match is None or not body.get("name"):
                continue
            with contextlib.suppress(binascii.Error):
                found[str(body["name"])] = base64.b64decode(match.group(1))
        return found

    async def on_guild_emojis_update(
        self, guild: discord.Guild, before: list[discord.Emoji], after: list[discord.Emoji]
    ) -> None:
        """Hand new emoji images to the page so ``<:name:id>`` in messages renders as the picture.

        This fills SimCord's preview asset table (a private attribute, hence the guard): without it
        the page shows "Custom emoji unavailable" in place of the image, and nothing else breaks.
        """
        assets = getattr(self.preview, "_explicit_assets", None)
        if not isinstance(assets, dict):
            return
        from simcord.backend.cdn import CDN_BASE

        images = self.images(guild.id)
        known = {emoji.id for emoji in before}
        for emoji in after:
            data = images.get(emoji.name)
            if emoji.id not in known and data is not None:
                assets[f"{CDN_BASE}/emojis/{emoji.id}.png"] = (f"{emoji.name}.png", data)


def emoji_sheet(images: list[bytes]) -> bytes:
    """One transparent PNG with the emoji side by side, in the order given."""
    from PIL import Image

    columns = min(len(images), SHEET_COLUMNS)
    rows = -(-len(images) // SHEET_COLUMNS)
    sheet = Image.new("RGBA", (columns * SHEET_CELL, rows * SHEET_CELL), (0, 0, 0, 0))
    for index, data in enumerate(images):
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGBA")
            image.thumbnail((SHEET_CELL - 8, SHEET_CELL - 8))
            x = (index % SHEET_COLUMNS) * SHEET_CELL + (SHEET_CELL - image.width) // 2
            y = (index // SHEET_COLUMNS) * SHEET_CELL + (SHEET_CELL - image.height) // 2
            sheet.alpha_composite(image, (x, y))
    out = io.BytesIO()
    sheet.save(out, format="PNG")
    return out.getvalue()


def server_emoji_command(shelf: EmojiShelf) -> app_commands.Command[Any, ..., None]:
    """``/server-emoji``, added in the preview only: Discord's server settings, as a message."""

    @app_commands.command(name="server-emoji")
    @app_commands.guild_only()
    async def server_emoji(interaction: discord.Interaction) -> None:
        """(Preview only) Show this simulated server's custom emoji."""
        guild = interaction.guild
        assert guild is not None  # guild_only
        emojis = sorted(guild.emojis, key=lambda e: e.id)
        header = f"**{guild.name}** has {len(emojis)}/{guild.emoji_limit} custom emoji"
        if not emojis:
            await interaction.response.send_message(f"{header}. Make one with `/emoji`, then ➕.")
            return
        images = shelf.images(guild.id)
        names = " ".join(f"{emoji} `:{emoji.name}:`" for emoji in emojis)
        pictures = [images[e.name] for e in emojis if e.name in images]
        files = []
        if pictures:
            sheet = await asyncio.to_thread(emoji_sheet, pictures)
            files.append(discord.File(io.BytesIO(sheet), filename="server_emoji.png"))
        await interaction.response.send_message(f"{header}:\n{names}", files=files)

    return server_emoji


def check_port(port: int) -> None:
    """Fail in a second, before the model loads, when ``port`` is taken (say, by another preview).

    Binding the same way the page's server will (SO_REUSEADDR, as asyncio does on Unix) answers the
    question without connecting anywhere; the server's own bind error stays as the fallback for a race.
    """
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if os.name == "posix":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PreviewError(
                f"could not bind port {port} on 127.0.0.1 ({exc.strerror or exc}; another preview?): "
                "choose another with --port, or `--port 0` for any free one"
            ) from None


async def serve(
    config: Config,
    *,
    port: int = DEFAULT_PORT,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
) -> None:
    """Run the bot in SimCord and serve the page until ``stop`` is set or the page ends the session."""
    check_port(port)
    try:
        import simcord
        from simcord.backend.errors import SetupError
    except ImportError as exc:  # the dev extra installs it; a plain install may not have it
        raise PreviewError('the preview needs SimCord: pip install -e ".[preview]"') from exc

    with tempfile.TemporaryDirectory(prefix="text2emoji-preview-") as data_dir:
        bot = create_bot(preview_config(config, Path(data_dir)))
        shelf = EmojiShelf()
        bot.tree.add_command(server_emoji_command(shelf))
        # simcord.run(), spelt out so the world exists before the bot logs in: its READY then lists the
        # server (the log says "in 1 guild(s)", not 0) and the bot user has our name, not "TestBot".
        env = simcord.Env(bot, settle_timeout=SETTLE_TIMEOUT_S, check_errors=False)
        with contextlib.suppress(AttributeError):  # cosmetic; a SimCord without it keeps "TestBot"
            env.backend.bot_user.name = BOT_NAME
        shelf.env = env
        world = build_world(env)
        await env.start()
        with env.time_context():
            try:
                session = env.preview(
                    world.channel, viewers=[world.admin, world.member], layout="channel", port=port
                )
                async with session as preview:
                    shelf.preview = preview
                    bot.add_listener(shelf.on_guild_emojis_update, "on_guild_emojis_update")
                    on_ready(preview.url)
                    ended = asyncio.ensure_future(preview.wait_closed())
                    stopped = asyncio.ensure_future(stop.wait())
                    try:
                        await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        ended.cancel()
                        stopped.cancel()
                    log.info("Stopping the preview (%s)", "signal" if stop.is_set() else "page ended it")
            except SetupError as exc:
                hint = " (in use? `--port 0` picks a free one)" if "bind port" in str(exc) else ""
                raise PreviewError(f"{exc}{hint}") from exc
            finally:
                await env.shutdown()
    log.info("Preview stopped")


def announce(url: str) -> None:
    """Tell the person at the terminal where to go (the program's output, so stdout rather than the log)."""
    print(
        f"\ntext2emoji preview is running. Open this link in your browser\n"
        f"(it carries the session key: anyone with it can drive this preview):\n\n    {url}\n\n"
        f"Try `/emoji text:축하해`, then Reroll; switch members with 'Viewing as'. Ctrl-C stops.\n",
        flush=True,
    )


def run_preview(config: Config, *, port: int = DEFAULT_PORT) -> int:
    """Serve until Ctrl-C or SIGTERM; returns the process exit status."""
    setup_logging(config.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still raises KeyboardInterrupt
                loop.add_signal_handler(signum, stop.set)
        await serve(config, port=port, stop=stop, on_ready=announce)

    try:
        asyncio.run(main())
    except PreviewError as exc:
        print(f"emoji-bot: could not start the preview: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        log.info("Preview interrupted")
    return 0
