"""Saving a generated image to the server as a custom emoji or a sticker.

The checklist follows RoboDanny's emoji upload: member and bot permissions, free slots, size caps,
a valid name, a timeout, an audit-log reason naming the member, and a clear ephemeral message for
every way it can fail. Nothing here retries on its own: blind retries on 403/429 count towards
Discord's invalid-request ban.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable
from typing import TypeVar

import discord
from PIL import Image

from bot import imaging

T = TypeVar("T")

log = logging.getLogger(__name__)

DISCORD_TIMEOUT_S = 30.0
NEED_PERMISSION = "You need the **Create Expressions** permission in this server to add {what}."
BOT_NEEDS_PERMISSION = (
    "I need the **Create Expressions** permission to add {what}. "
    "Ask an admin to give my role that permission (Server Settings → Roles)."
)


def _reason(user: discord.abc.User) -> str:
    return f"text2emoji: added by {user} ({user.id})"


def _check_permissions(interaction: discord.Interaction, what: str) -> str | None:
    """Why this member or this bot cannot create expressions here, or None."""
    if interaction.guild is None:
        return f"I can only add {what} inside a server."
    if not interaction.permissions.create_expressions:
        return NEED_PERMISSION.format(what=what)
    if not interaction.app_permissions.create_expressions:
        return BOT_NEEDS_PERMISSION.format(what=what)
    return None


def _explain(error: discord.HTTPException, what: str) -> str:
    """A user-facing sentence for a Discord error on an expression route."""
    if isinstance(error, discord.Forbidden):
        return BOT_NEEDS_PERMISSION.format(what=what)
    if error.code == 30008:
        return "This server has no free emoji slots left. Remove one (or boost the server) and try again."
    if error.code == 30039:
        return "This server has no free sticker slots left. Remove one (or boost the server) and try again."
    if error.status == 429:
        return "Discord is rate-limiting uploads in this server right now. Try again in a minute."
    if error.status >= 500:
        return "Discord had a problem saving it. Try again in a moment."
    return f"Discord refused to add {what}: {error.text or error.status}"


async def _create(interaction: discord.Interaction, what: str, request: Awaitable[T]) -> T | None:
    """Await one Discord create call with a timeout; on failure tell the user why and return None."""
    try:
        return await asyncio.wait_for(request, DISCORD_TIMEOUT_S)
    except discord.HTTPException as exc:
        log.info("creating %s failed in guild %s: %s", what, interaction.guild_id, exc)
        await interaction.followup.send(_explain(exc, what), ephemeral=True)
    except TimeoutError:
        await interaction.followup.send("Discord took too long to answer. Try again later.", ephemeral=True)
    return None


async def add_emoji(interaction: discord.Interaction, image: Image.Image, name: str) -> None:
    """Answer the click with exactly one ephemeral message: the new emoji or why not."""
    what = "server emoji"
    problem = _check_permissions(interaction, what)
    guild = interaction.guild
    if problem is None and guild is not None:
        static = sum(1 for emoji in guild.emojis if not emoji.animated)
        if static >= guild.emoji_limit:
            problem = (
                f"This server has no free emoji slots ({static}/{guild.emoji_limit}). "
                "Remove one (or boost the server) and try again."
            )
    if problem is not None or guild is None:
        await interaction.response.send_message(problem, ephemeral=True)
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    data = await asyncio.to_thread(imaging.emoji_png, image)
    emoji = await _create(
        interaction, what, guild.create_custom_emoji(name=name, image=data, reason=_reason(interaction.user))
    )
    if emoji is None:
        return
    log.info("Added emoji %s (%s) to guild %s for %s", emoji.name, emoji.id, guild.id, interaction.user.id)
    await interaction.followup.send(f"Added {emoji} as `:{emoji.name}:`.", ephemeral=True)


async def add_sticker(
    interaction: discord.Interaction, image: Image.Image, name: str, description: str, tag: str
) -> None:
    """Answer the click with exactly one ephemeral message: the new sticker or why not."""
    what = "stickers"
    problem = _check_permissions(interaction, what)
    guild = interaction.guild
    if problem is None and guild is not None and len(guild.stickers) >= guild.sticker_limit:
        problem = (
            f"This server has no free sticker slots ({len(guild.stickers)}/{guild.sticker_limit}). "
            "Remove one (or boost the server) and try again."
        )
    if problem is not None or guild is None:
        await interaction.response.send_message(problem, ephemeral=True)
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    data = await asyncio.to_thread(imaging.sticker_png, image)
    file = discord.File(io.BytesIO(data), filename="sticker.png")
    sticker = await _create(
        interaction,
        "a sticker",
        guild.create_sticker(
            name=name, description=description, emoji=tag, file=file, reason=_reason(interaction.user)
        ),
    )
    if sticker is None:
        return
    log.info(
        "Added sticker %s (%s) to guild %s for %s", sticker.name, sticker.id, guild.id, interaction.user.id
    )
    await interaction.followup.send(f"Added the sticker **{sticker.name}** ({tag}).", ephemeral=True)
