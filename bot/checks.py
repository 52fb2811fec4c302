"""Who may do what, as discord.py checks: one rule, written once, refused with one message.

Slash commands and autocomplete callbacks take ``@create_expressions()`` (an ``app_commands.check``, as
RoboDanny's ``checks.py`` does); a refused command raises ``Refused``, which the bot's single app-command
error handler turns into a private answer, and a refused autocomplete suggests nothing. Views whose
buttons act for the server subclass ``ExpressionsView``, whose ``interaction_check`` applies the same rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import discord
from discord import app_commands

from bot.replies import send_ephemeral

T = TypeVar("T")

NEED_PERMISSION = (
    "You need the **Create Expressions** permission in this server to manage its training emoji."
)
NEED_SERVER = "Server training only works inside a server."


class Refused(app_commands.CheckFailure):
    """A check said no; ``str(error)`` is the message for the user."""


def can_create_expressions(interaction: discord.Interaction) -> bool:
    """Create Expressions inside a server: the permission ``/emoji-train``'s ``default_permissions`` asks
    Discord for too, so what Discord shows and what the bot allows agree."""
    return interaction.guild_id is not None and interaction.permissions.create_expressions


def require_create_expressions(interaction: discord.Interaction) -> bool:
    """The check itself: True, or ``Refused`` saying what is missing."""
    if interaction.guild_id is None:
        raise Refused(NEED_SERVER)
    if not can_create_expressions(interaction):
        raise Refused(NEED_PERMISSION)
    return True


def create_expressions() -> Callable[[T], T]:
    """Decorator for commands and autocomplete callbacks that manage a server's expressions or training."""
    return app_commands.check(require_create_expressions)


class ExpressionsView(discord.ui.View):
    """A view whose every button requires Create Expressions in the server, checked again at each click
    (the member may have lost the role since the message was sent)."""

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        try:
            return require_create_expressions(interaction)
        except Refused as refusal:
            await send_ephemeral(interaction, str(refusal))
            return False
