"""The buttons under a generated emoji: pick a candidate, reroll, save to the server.

The buttons are persistent (``DynamicItem``): their ``custom_id`` names the stored result
(``bot.results``), so a click is answered by whichever bot process is running, also after a restart,
by the ``Generate`` cog's ``press``. Saved emoji and stickers turn their button into a disabled
"Added …" label.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord
from PIL import Image

from bot import imaging
from bot.naming import emoji_name
from bot.replies import send_ephemeral
from bot.results import ResultRecord, SaveKind

if TYPE_CHECKING:
    from model import Drawing

log = logging.getLogger(__name__)

EMBED_COLOUR = discord.Colour(0xF7B500)
FALLBACK_TAG = "🙂"  # a sticker needs a tag; a model that found none gets this one


@dataclass(frozen=True)
class Result:
    """A posted ``/emoji`` result: the stored request, the model's drawing for it, which candidate is
    shown and what it was saved as. Enough to render it again and to act on its buttons."""

    record: ResultRecord  # the request; its id is what the buttons name
    drawing: Drawing  # images, sticker tag and mashup parts, as the model returned them
    pick: int | None = None  # index of the chosen candidate, once picked
    saved: dict[SaveKind, str] = field(default_factory=dict)  # what the chosen image was saved as

    @property
    def images(self) -> list[Image.Image]:
        return self.drawing.images

    @property
    def tag(self) -> str:
        """The related Unicode emoji, the sticker's required tag."""
        return self.drawing.tag or FALLBACK_TAG

    @property
    def mashup(self) -> str:
        """ "base + modifier" when the text was drawn as a mashup, else ""."""
        return " + ".join(self.drawing.parts) if self.drawing.parts else ""

    @property
    def chosen_index(self) -> int | None:
        """Which candidate the save buttons act on (None while candidates are still shown)."""
        if self.pick is not None:
            return self.pick
        return 0 if len(self.images) == 1 else None

    @property
    def chosen(self) -> Image.Image | None:
        """The single 72-px image the save buttons act on (None while candidates are still shown)."""
        index = self.chosen_index
        return None if index is None else self.images[index]

    def chosen_at(self, size: int) -> Image.Image | None:
        """The chosen image at 128 or 320 px: cut from the model's high-resolution drawing, not 72 px."""
        index = self.chosen_index
        return None if index is None else self.drawing.at_size(index, size)

    @property
    def decided(self) -> bool:
        """Whether one image is shown (and can be saved), rather than candidates to pick from."""
        return self.pick is not None or self.record.count == 1

    @property
    def name(self) -> str:
        return emoji_name(self.record.text, self.record.seed)


def render_files(result: Result) -> list[tuple[str, bytes]]:
    """Attachments, first the 320×320 RGBA PNG (the emoji itself, or the grid of candidates).

    CPU work (resizing, PNG encoding): call it through ``asyncio.to_thread``.
    """
    record = result.record
    meta: dict[str, Any] = {"text": record.text, "seed": record.seed, "model": record.model_name}
    name = result.name
    chosen = result.chosen
    if chosen is not None:
        suffix = f"_{result.pick + 1}" if result.pick is not None else ""
        return [
            (f"{name}{suffix}.png", imaging.sticker_png(result.chosen_at(imaging.STICKER_SIZE), **meta)),
            (f"{name}{suffix}_72.png", imaging.png_bytes(chosen, **meta)),
        ]
    files = [
        (
            f"{name}_grid.png",
            imaging.fit_png(
                imaging.grid(result.drawing.large or result.images), imaging.STICKER_MAX_BYTES, **meta
            ),
        )
    ]
    files += [
        (f"{name}_{i + 1}.png", imaging.png_bytes(image, **meta)) for i, image in enumerate(result.images)
    ]
    return files


def result_embed(result: Result) -> discord.Embed:
    record = result.record
    embed = discord.Embed(
        description=f"**{discord.utils.escape_markdown(record.text)}**", colour=EMBED_COLOUR
    )
    embed.add_field(name="Seed", value=str(record.seed))
    embed.add_field(name="Model", value=record.model_name)
    if result.mashup:
        embed.add_field(name="Mashup", value=discord.utils.escape_markdown(result.mashup))
    if result.chosen is None:
        embed.add_field(name="Candidates", value=f"{record.count}: pick one with the buttons", inline=False)
    elif result.pick is not None:
        embed.add_field(name="Candidate", value=f"{result.pick + 1} of {record.count}")
    return embed


def as_files(files: list[tuple[str, bytes]]) -> list[discord.File]:
    return [discord.File(io.BytesIO(data), filename=name) for name, data in files]


# One template for every button under a result: what to do, which candidate (0: the only/none), which
# stored result. Everything a click needs is in it or in the ResultStore, so buttons outlive restarts.
BUTTON_TEMPLATE = r"emoji:(?P<action>pick|reroll|save-emoji|save-sticker):(?P<pick>[0-4]):(?P<result>[0-9]+)"


def result_view(result: Result) -> discord.ui.View:
    """The buttons for one result message; persistent (no timeout), answered by ``ResultButton``."""
    view = discord.ui.View(timeout=None)
    result_id = result.record.id
    number = 0 if result.pick is None else result.pick + 1
    if not result.decided:
        for index in range(result.record.count):
            view.add_item(ResultButton("pick", index + 1, result_id, label=f"Pick {index + 1}", row=0))
    view.add_item(
        ResultButton(
            "reroll",
            number,
            result_id,
            label="Reroll",
            emoji="🔁",
            row=1,
            style=discord.ButtonStyle.primary,
        )
    )
    if result.decided and result.record.guild_id is not None:  # no saving in DMs
        for kind, action, label, emoji in (
            (SaveKind.EMOJI, "save-emoji", "Add as server emoji", "➕"),
            (SaveKind.STICKER, "save-sticker", "Add as sticker", "🏷️"),
        ):
            saved = result.saved.get(kind)
            view.add_item(
                ResultButton(
                    action,
                    number,
                    result_id,
                    label=f"Added {saved}"[:80] if saved else label,
                    emoji="✅" if saved else emoji,
                    row=1,
                    disabled=saved is not None,
                )
            )
    return view


class ResultButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=BUTTON_TEMPLATE):
    """A result button that any running bot can answer, also one started after the message was posted."""

    def __init__(
        self,
        action: str,
        pick: int,
        result_id: int,
        *,
        label: str | None = None,
        emoji: str | None = None,
        row: int | None = None,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        disabled: bool = False,
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=label,
                emoji=emoji,
                row=row,
                style=style,
                disabled=disabled,
                custom_id=f"emoji:{action}:{pick}:{result_id}",
            )
        )
        self.action = action
        self.pick = pick
        self.result_id = result_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ResultButton:
        return cls(match["action"], int(match["pick"]), int(match["result"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = interaction.client.get_cog("Generate")  # type: ignore[attr-defined]
        try:
            if cog is None:
                raise RuntimeError("the Generate cog is not loaded")
            await cog.press(interaction, self.action, self.pick, self.result_id)
        except Exception:
            log.exception("Button %s failed", self.item.custom_id)
            await send_ephemeral(interaction, "Something went wrong with that button. Please try again.")
