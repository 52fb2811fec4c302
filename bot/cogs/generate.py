"""``/emoji``: a few words in, a new emoji out.

Every path ends in exactly one final answer to the user: cheap refusals (bad text, cooldown, busy)
are the immediate ephemeral response; accepted requests are deferred at once, then the deferred
message is edited into the image, or into a clear error if the model fails, the bot shuts down or
the wait would outlive the 15-minute interaction token.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.views import Result, ResultView, as_files, render_files, result_embed
from bot.worker import DeadlineExceeded, GenerationFailed, QueueFull, WorkerStopped

if TYPE_CHECKING:
    from bot.app import EmojiBot

log = logging.getLogger(__name__)

MAX_SEED = 2**31 - 1
MAX_TEXT = 100
QUEUE_NOTE_AFTER = 1  # show the queue position when at least this many batches are ahead


class Cooldown:
    """Per-user spacing between generations, on ``time.monotonic`` (virtual under SimCord)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[int, float] = {}

    def retry_after(self, user_id: int) -> float:
        """Seconds until ``user_id`` may generate again (0: now)."""
        last = self._last.get(user_id)
        if last is None:
            return 0.0
        return max(0.0, self.seconds - (time.monotonic() - last))

    def hit(self, user_id: int) -> None:
        now = time.monotonic()
        if len(self._last) > 10_000:  # forget users whose cooldown is long over
            self._last = {uid: t for uid, t in self._last.items() if now - t < self.seconds}
        self._last[user_id] = now


class Generate(commands.Cog):
    """The /emoji command and its buttons."""

    def __init__(self, bot: EmojiBot) -> None:
        self.bot = bot
        self.config = bot.config
        self.worker = bot.worker
        self.cooldown = Cooldown(bot.config.user_cooldown_s)

    @app_commands.command(name="emoji")
    @app_commands.describe(
        text="A few words, Korean or English (e.g. 축하해, party cat)",
        count="How many candidates to draw (1–4)",
        seed="Same text + same seed = the same emoji",
        private="Only you see the result",
    )
    async def emoji(
        self,
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, MAX_TEXT],
        count: app_commands.Range[int, 1, 4] = 1,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        private: bool = False,
    ) -> None:
        """Turn a few words into a brand-new emoji."""
        await self.generate(interaction, text, count=count, seed=seed, private=private)

    async def reroll(self, interaction: discord.Interaction, previous: Result) -> None:
        """Same text and count, new seed (the view already checked it is the requester)."""
        await self.generate(
            interaction, previous.text, count=previous.count, seed=None, private=previous.private
        )

    async def generate(
        self, interaction: discord.Interaction, text: str, *, count: int, seed: int | None, private: bool
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.bot.inflight.add(task)  # close() waits for us to answer
        try:
            await self._generate(interaction, text, count, seed, private)
        finally:
            if task is not None:
                self.bot.inflight.discard(task)

    async def _generate(
        self, interaction: discord.Interaction, text: str, count: int, seed: int | None, private: bool
    ) -> None:
        user = interaction.user
        try:
            text = self.worker.clean_text(text)
        except ValueError:  # model.EmptyTextError
            await self._refuse(interaction, "Give me some words to draw, e.g. `/emoji text:축하해`.")
            return
        wait = self.cooldown.retry_after(user.id)
        if wait > 0:
            await self._refuse(interaction, f"Easy there! You can make another emoji in {wait:.0f} s.")
            return
        seed = secrets.randbelow(MAX_SEED + 1) if seed is None else seed
        try:
            ticket = self.worker.submit(
                text, count, seed, guild_id=interaction.guild_id, deadline_s=self.config.reply_deadline_s
            )
        except QueueFull as exc:
            await self._refuse(
                interaction,
                f"I'm busy drawing {exc.pending} emoji right now. "
                f"Try again in about {exc.retry_after:.0f} s.",
            )
            return
        except WorkerStopped:
            await self._refuse(interaction, "I'm restarting right now. Try again in a minute.")
            return
        self.cooldown.hit(user.id)
        try:
            await interaction.response.defer(ephemeral=private, thinking=True)
        except discord.HTTPException:
            ticket.cancel()  # the interaction is gone (expired or acknowledged): nobody to answer
            log.warning("Could not defer /emoji for %s; dropped the request", user.id, exc_info=True)
            return
        try:
            if ticket.ahead >= QUEUE_NOTE_AFTER * self.worker.max_batch:
                await self._note(
                    interaction,
                    f"⏳ You're #{ticket.ahead + 1} in the queue, about {ticket.estimated_wait_s:.0f} s.",
                )
            generation = await ticket.future  # the worker resolves it by the deadline at the latest
        except DeadlineExceeded:
            log.warning("Gave up on %r for %s: the queue outlived the interaction token", text, user.id)
            await self._edit(
                interaction, content="⌛ That took too long, sorry. Please try again in a few minutes."
            )
            return
        except WorkerStopped:
            await self._edit(
                interaction,
                content="🔌 I'm restarting, so I couldn't finish that one. Try again in a minute.",
            )
            return
        except GenerationFailed:
            await self._edit(
                interaction, content="⚠️ Sorry, I couldn't draw that one. Try again or use other words."
            )
            return
        except asyncio.CancelledError:
            ticket.cancel()
            raise
        result = Result(
            text=text,
            seed=seed,
            count=count,
            private=private,
            requester_id=user.id,
            images=generation.images,
            tag=generation.related_emoji,
            model_name=generation.model_name,
            mashup=generation.mashup,
        )
        await self.send_result(interaction, result)

    async def send_result(self, interaction: discord.Interaction, result: Result) -> None:
        files = await asyncio.to_thread(render_files, result)
        view = ResultView(result, interaction, self.reroll, timeout=self.config.view_timeout_s)
        try:
            view.message = await interaction.edit_original_response(
                content=None, embed=result_embed(result), attachments=as_files(files), view=view
            )
            log.info(
                "Drew %r (seed %s, %d) for user %s",
                result.text,
                result.seed,
                result.count,
                result.requester_id,
            )
        except discord.HTTPException:
            view.stop()
            log.exception("Could not deliver the image for %r", result.text)
            await self._edit(interaction, content="⚠️ Discord would not take the image. Please try again.")

    async def _refuse(self, interaction: discord.Interaction, message: str) -> None:
        """An immediate, private answer for requests that never reach the model."""
        try:
            await interaction.response.send_message(message, ephemeral=True)
        except discord.HTTPException:
            log.warning("Could not answer interaction %s", interaction.id, exc_info=True)

    async def _note(self, interaction: discord.Interaction, content: str) -> None:
        """A progress note in the deferred message; the result replaces it."""
        try:
            await interaction.edit_original_response(content=content)
        except discord.HTTPException:
            log.warning("Could not post the queue position for %s", interaction.id, exc_info=True)

    async def _edit(self, interaction: discord.Interaction, *, content: str) -> None:
        """Edit the deferred message; by then the token may be gone, and there is nobody left to tell."""
        try:
            await interaction.edit_original_response(content=content, embed=None, attachments=[], view=None)
        except discord.HTTPException:
            log.warning("Could not edit the reply to interaction %s", interaction.id, exc_info=True)


async def setup(bot: EmojiBot) -> None:
    await bot.add_cog(Generate(bot))
