"""Answering an interaction whatever state it is in."""

from __future__ import annotations

import logging

import discord

log = logging.getLogger(__name__)


async def send_ephemeral(interaction: discord.Interaction, message: str) -> None:
    """Tell only this user `message`: as the response if none was sent yet, else as a follow-up.

    Used for refusals and last-resort error reports, so a failure to deliver is logged, never raised.
    """
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException:
        log.warning("Could not answer interaction %s", interaction.id, exc_info=True)


class UserError(Exception):
    """A request was refused for a reason the user can act on; ``str(error)`` is what they are told.

    Raised anywhere below a handler (store, training manager); the bot's one app-command error handler
    answers it privately instead of "Something went wrong".
    """
