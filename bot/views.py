"""The buttons under a generated emoji: pick a candidate, reroll, save to the server.

Views are not persistent: after ``view_timeout_s`` their buttons are disabled (edited through the
interaction that created the message, whose token outlives the view).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import discord
from PIL import Image

from bot import expressions, imaging
from bot.naming import emoji_name, sticker_name
from bot.replies import send_ephemeral

log = logging.getLogger(__name__)

EMBED_COLOUR = discord.Colour(0xF7B500)


@dataclass(frozen=True)
class Result:
    """One finished generation, enough to render it again and to act on its buttons."""

    text: str
    seed: int
    count: int
    private: bool
    requester_id: int
    images: list[Image.Image]
    tag: str  # related Unicode emoji, the sticker's required tag
    model_name: str
    pick: int | None = None  # index of the chosen candidate, once picked
    mashup: str = ""  # "base + modifier" for a mashup

    @property
    def chosen(self) -> Image.Image | None:
        """The single image the save buttons act on (None while candidates are still shown)."""
        if self.pick is not None:
            return self.images[self.pick]
        return self.images[0] if len(self.images) == 1 else None

    @property
    def name(self) -> str:
        return emoji_name(self.text, self.seed)


def render_files(result: Result) -> list[tuple[str, bytes]]:
    """Attachments, first the 320×320 RGBA PNG (the emoji itself, or the grid of candidates).

    CPU work (resizing, PNG encoding): call it through ``asyncio.to_thread``.
    """
    meta: dict[str, Any] = {"text": result.text, "seed": result.seed, "model": result.model_name}
    name = result.name
    chosen = result.chosen
    if chosen is not None:
        suffix = f"_{result.pick + 1}" if result.pick is not None else ""
        return [
            (f"{name}{suffix}.png", imaging.sticker_png(chosen, **meta)),
            (f"{name}{suffix}_72.png", imaging.png_bytes(chosen, **meta)),
        ]
    files = [
        (f"{name}_grid.png", imaging.fit_png(imaging.grid(result.images), imaging.STICKER_MAX_BYTES, **meta))
    ]
    files += [
        (f"{name}_{i + 1}.png", imaging.png_bytes(image, **meta)) for i, image in enumerate(result.images)
    ]
    return files


def result_embed(result: Result) -> discord.Embed:
    embed = discord.Embed(
        description=f"**{discord.utils.escape_markdown(result.text)}**", colour=EMBED_COLOUR
    )
    embed.add_field(name="Seed", value=str(result.seed))
    embed.add_field(name="Model", value=result.model_name)
    if result.mashup:
        embed.add_field(name="Mashup", value=discord.utils.escape_markdown(result.mashup))
    if result.chosen is None:
        embed.add_field(name="Candidates", value=f"{result.count}: pick one with the buttons", inline=False)
    elif result.pick is not None:
        embed.add_field(name="Candidate", value=f"{result.pick + 1} of {result.count}")
    return embed


def as_files(files: list[tuple[str, bytes]]) -> list[discord.File]:
    import io

    return [discord.File(io.BytesIO(data), filename=name) for name, data in files]


Reroll = Callable[[discord.Interaction, Result], Awaitable[None]]


class ResultView(discord.ui.View):
    """Buttons for one result message. Pick and reroll are the requester's; saving needs the permission."""

    def __init__(
        self, result: Result, origin: discord.Interaction, reroll: Reroll, *, timeout: float
    ) -> None:
        super().__init__(timeout=timeout)
        self.result = result
        self.origin = origin  # its token edits the message when the view times out
        self.message: discord.Message | None = None  # fallback once that token has expired
        self._reroll = reroll
        key = f"{origin.id}:{result.pick if result.pick is not None else 'all'}"
        if result.chosen is None:
            for index in range(result.count):
                self._button(f"Pick {index + 1}", f"emoji:pick:{index + 1}:{key}", self._picker(index), row=0)
        self._button("Reroll", f"emoji:reroll:{key}", self.reroll, emoji="🔁", row=1)
        if result.chosen is not None and origin.guild_id is not None:
            self._button("Add as server emoji", f"emoji:save-emoji:{key}", self.add_emoji, emoji="➕", row=1)
            self._button("Add as sticker", f"emoji:save-sticker:{key}", self.add_sticker, emoji="🏷️", row=1)

    def _button(
        self,
        label: str,
        custom_id: str,
        callback: Callable[[discord.Interaction], Awaitable[None]],
        *,
        emoji: str | None = None,
        row: int,
    ) -> None:
        style = discord.ButtonStyle.primary if label == "Reroll" else discord.ButtonStyle.secondary
        button: discord.ui.Button[ResultView] = discord.ui.Button(
            label=label, custom_id=custom_id, emoji=emoji, style=style, row=row
        )
        button.callback = callback  # type: ignore[method-assign]
        self.add_item(button)

    async def _only_requester(self, interaction: discord.Interaction, action: str) -> bool:
        if interaction.user.id == self.result.requester_id:
            return True
        await interaction.response.send_message(
            f"Only <@{self.result.requester_id}> can {action} this one. Make your own with `/emoji`!",
            ephemeral=True,
        )
        return False

    def _picker(self, index: int) -> Callable[[discord.Interaction], Awaitable[None]]:
        async def pick(interaction: discord.Interaction) -> None:
            if not await self._only_requester(interaction, "pick"):
                return
            chosen = replace(self.result, pick=index)
            files = await asyncio.to_thread(render_files, chosen)
            view = ResultView(chosen, self.origin, self._reroll, timeout=self.timeout or 600.0)
            view.message = self.message
            self.stop()
            await interaction.response.edit_message(
                embed=result_embed(chosen), attachments=as_files(files), view=view
            )

        return pick

    async def reroll(self, interaction: discord.Interaction) -> None:
        if await self._only_requester(interaction, "reroll"):
            await self._reroll(interaction, self.result)

    async def add_emoji(self, interaction: discord.Interaction) -> None:
        image = self.result.chosen
        assert image is not None
        await expressions.add_emoji(interaction, image, self.result.name)

    async def add_sticker(self, interaction: discord.Interaction) -> None:
        image = self.result.chosen
        assert image is not None
        description = f"Made by text2emoji from “{self.result.text}”"[:100]
        await expressions.add_sticker(
            interaction, image, sticker_name(self.result.text, self.result.seed), description, self.result.tag
        )

    async def on_timeout(self) -> None:
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        try:
            await self.origin.edit_original_response(view=self)
            return
        except discord.HTTPException as exc:
            log.debug("Could not disable buttons through the interaction: %s", exc)
        if self.message is not None and not self.message.flags.ephemeral:
            # The token is older than 15 minutes: edit as the bot through the channel (public messages
            # only; an InteractionMessage's own .edit() would use the dead token again).
            try:
                await self.message.channel.get_partial_message(self.message.id).edit(view=self)
            except discord.HTTPException as exc:
                log.debug("Could not disable buttons after timeout: %s", exc)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        log.error("Button %s failed", getattr(item, "custom_id", item), exc_info=error)
        await send_ephemeral(interaction, "Something went wrong with that button. Please try again.")
