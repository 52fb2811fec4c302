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
from dataclasses import dataclass
from typing import TypeVar

import discord
from PIL import Image

from bot import imaging
from bot.results import SaveKind

T = TypeVar("T")

log = logging.getLogger(__name__)

DISCORD_TIMEOUT_S = 30.0
NEED_PERMISSION = "You need the **Create Expressions** permission in this server to add {what}."
BOT_NEEDS_PERMISSION = (
    "I need the **Create Expressions** permission to add {what}. "
    "Ask an admin to give my role that permission (Server Settings → Roles)."
)


@dataclass(frozen=True)
class Saved:
    """A new emoji or sticker: the button's label from now on, and the confirmation for the user."""

    label: str
    message: str


WHAT = {SaveKind.EMOJI: "server emoji", SaveKind.STICKER: "stickers"}


def _reason(user: discord.abc.User) -> str:
    return f"text2emoji: added by {user} ({user.id})"


def refusal(interaction: discord.Interaction, kind: SaveKind) -> str | None:
    """Why this member or this bot cannot add this kind of expression here now, or None."""
    what = WHAT[kind]
    guild = interaction.guild
    if guild is None:
        return f"I can only add {what} inside a server."
    if not interaction.permissions.create_expressions:
        return NEED_PERMISSION.format(what=what)
    if not interaction.app_permissions.create_expressions:
        return BOT_NEEDS_PERMISSION.format(what=what)
    if kind is SaveKind.EMOJI:
        used, limit = sum(1 for emoji in guild.emojis if not emoji.animated), guild.emoji_limit
    else:
        used, limit = len(guild.stickers), guild.sticker_limit
    if used >= limit:
        return (
            f"This server has no free {kind.value} slots ({used}/{limit}). "
            "Remove one (or boost the server) and try again."
        )
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


async def add_emoji(interaction: discord.Interaction, image: Image.Image, name: str) -> Saved | None:
    """Create the emoji (after ``refusal`` said yes and the click was deferred).

    None when it failed: the user was already told why.
    """
    guild = interaction.guild
    assert guild is not None
    data = await asyncio.to_thread(imaging.emoji_png, image)
    emoji = await _create(
        interaction,
        WHAT[SaveKind.EMOJI],
        guild.create_custom_emoji(name=name, image=data, reason=_reason(interaction.user)),
    )
    if emoji is None:
        return None
    log.info("Added emoji %s (%s) to guild %s for %s", emoji.name, emoji.id, guild.id, interaction.user.id)
    return Saved(f":{emoji.name}:", f"Added {emoji} as `:{emoji.name}:`.")


async def add_sticker(
    interaction: discord.Interaction, image: Image.Image, name: str, description: str, tag: str
) -> Saved | None:
    """Create the sticker (after ``refusal`` said yes and the click was deferred).

    None when it failed: the user was already told why.
    """
    guild = interaction.guild
    assert guild is not None
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
        return None
    log.info(
        "Added sticker %s (%s) to guild %s for %s", sticker.name, sticker.id, guild.id, interaction.user.id
    )
    return Saved(f"sticker {sticker.name}", f"Added the sticker **{sticker.name}** ({tag}).")
