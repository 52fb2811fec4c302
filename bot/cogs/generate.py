"""``/emoji``: a few words in, a new emoji out.

Every path ends in exactly one final answer to the user: cheap refusals (bad text, cooldown, busy)
are the immediate ephemeral response; accepted requests are deferred at once, then the deferred
message is edited into the image, or into a clear error if the model fails, the bot shuts down or
the wait would outlive the 15-minute interaction token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import expressions, imaging
from bot.naming import sticker_name
from bot.replies import send_ephemeral
from bot.results import ResultRecord, SaveKind
from bot.views import Result, ResultButton, as_files, render_files, result_embed, result_view
from bot.worker import DeadlineExceeded, Generation, GenerationFailed, QueueFull, WorkerError, WorkerStopped
from model import MAX_TEXT_CHARS  # torch-free: the model's prompt limit, which Discord enforces too

if TYPE_CHECKING:
    from bot.app import EmojiBot

log = logging.getLogger(__name__)

MAX_SEED = 2**31 - 1
MAX_COUNT = 4
DRAWN_CACHE = 64  # recent results kept in memory (≤ 1.7 MB each: 4 × 320 px), so buttons need no redraw
GONE = "I no longer have this emoji, sorry. Make a new one with `/emoji`!"
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


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]


class Generate(commands.Cog):
    """The /emoji command and its buttons."""

    def __init__(self, bot: EmojiBot) -> None:
        self.bot = bot
        self.config = bot.config
        self.worker = bot.worker
        self.cooldown = Cooldown(bot.config.user_cooldown_s)
        self.results = bot.results  # opened and closed by the bot
        self._drawn: OrderedDict[int, Generation] = OrderedDict()
        self._saving = KeyedLocks()  # (result, image, kind): one save at a time

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ResultButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ResultButton)

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
        text: app_commands.Range[str, 1, MAX_TEXT_CHARS],
        count: app_commands.Range[int, 1, MAX_COUNT] = 1,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        private: bool = False,
    ) -> None:
        """Turn a few words into a brand-new emoji."""
        await self.generate(interaction, text, count=count, seed=seed, private=private)

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
        # Discord enforces the option ranges only as far as the client's copy of the schema is current.
        if not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            await self._refuse(interaction, f"`count` must be 1 to {MAX_COUNT}.")
            return
        if seed is not None and (not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
            await self._refuse(interaction, f"`seed` must be a whole number from 0 to {MAX_SEED}.")
            return
        if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
            await self._refuse(interaction, f"Keep it to {MAX_TEXT_CHARS} characters, please.")
            return
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
        record = await asyncio.to_thread(
            self.results.add,
            guild_id=interaction.guild_id,
            requester_id=user.id,
            text=text,
            seed=seed,
            count=count,
            private=private,
            model_name=generation.model_name,
        )
        self._remember(record.id, generation)
        await self.send_result(interaction, self._result(record, generation))

    async def send_result(self, interaction: discord.Interaction, result: Result) -> None:
        files = await asyncio.to_thread(render_files, result)
        try:
            await interaction.edit_original_response(
                content=None,
                embed=result_embed(result),
                attachments=as_files(files),
                view=result_view(result),
            )
            record = result.record
            log.info(
                "Drew %r (seed %s, %d) for user %s",
                record.text,
                record.seed,
                record.count,
                record.requester_id,
            )
        except discord.HTTPException:
            log.exception("Could not deliver the image for %r", result.record.text)
            await self._edit(interaction, content="⚠️ Discord would not take the image. Please try again.")

    # ----------------------------------------------------------------- the buttons

    async def press(self, interaction: discord.Interaction, action: str, pick: int, result_id: int) -> None:
        """Answer a result button (``bot.views.ResultButton``), on a message of any age."""
        record = await asyncio.to_thread(self.results.get, result_id)
        if record is None:
            await send_ephemeral(interaction, GONE)
            return
        if action == "save-emoji":
            await self._save(interaction, record, pick, SaveKind.EMOJI)
            return
        if action == "save-sticker":
            await self._save(interaction, record, pick, SaveKind.STICKER)
            return
        if interaction.user.id != record.requester_id:
            await send_ephemeral(
                interaction,
                f"Only <@{record.requester_id}> can {action} this one. Make your own with `/emoji`!",
            )
            return
        if action == "reroll":  # same text and count, new seed: a new message
            await self.generate(
                interaction, record.text, count=record.count, seed=None, private=record.private
            )
        elif 1 <= pick <= record.count:
            await self._pick(interaction, record, pick - 1)

    async def _pick(self, interaction: discord.Interaction, record: ResultRecord, index: int) -> None:
        """Show candidate ``index`` alone, in place, with the save buttons."""
        if record.id not in self._drawn:
            await interaction.response.defer()  # a redraw can outlast the 3 s to answer
        generation = await self._drawing(interaction, record)
        if generation is None:
            return
        saved = await asyncio.to_thread(self.results.saves, record.id, index)
        chosen = self._result(record, generation, pick=index, saved=saved)
        files = await asyncio.to_thread(render_files, chosen)
        edit = dict(embed=result_embed(chosen), attachments=as_files(files), view=result_view(chosen))
        if interaction.response.is_done():
            await interaction.edit_original_response(**edit)
        else:
            await interaction.response.edit_message(**edit)

    async def _save(
        self, interaction: discord.Interaction, record: ResultRecord, pick: int, kind: SaveKind
    ) -> None:
        """Add the shown image as a server emoji or sticker: at most once, however often it is clicked."""
        problem = expressions.refusal(interaction, kind)
        if problem is not None:
            await send_ephemeral(interaction, problem)
            return
        chosen = pick - 1 if pick else None  # 0: the result's only image
        index = chosen or 0
        await interaction.response.defer()  # the outcome follows privately; the buttons are edited in place
        async with self._saving.hold((record.id, index, kind)):  # a second click waits, then finds the save
            saved = await asyncio.to_thread(self.results.saves, record.id, index)
            if kind in saved:
                await interaction.followup.send(f"Already added as {saved[kind]}.", ephemeral=True)
                return
            generation = await self._drawing(interaction, record)
            if generation is None:
                return
            shown = self._result(record, generation, pick=chosen, saved=saved)
            image = shown.chosen_at(imaging.STICKER_SIZE)  # 128 px is cut from it, not from 72 px
            assert image is not None  # save buttons exist only where one image is shown
            if kind is SaveKind.EMOJI:
                done = await expressions.add_emoji(interaction, image, shown.name)
            else:
                description = f"Made by text2emoji from “{record.text}”"[:100]
                name = sticker_name(record.text, record.seed)
                done = await expressions.add_sticker(interaction, image, name, description, shown.tag)
            if done is None:
                return
            await asyncio.to_thread(
                self.results.record_save, record.id, index, kind, done.label, interaction.user.id
            )
            shown = replace(shown, saved={**saved, kind: done.label})
            try:  # the button first, so whoever looks next sees "Added …" rather than a live button
                await interaction.edit_original_response(view=result_view(shown))
            except discord.HTTPException:
                log.warning("Could not mark result %s as saved", record.id, exc_info=True)
            await interaction.followup.send(done.message, ephemeral=True)

    async def _drawing(self, interaction: discord.Interaction, record: ResultRecord) -> Generation | None:
        """The result's images: remembered, or redrawn exactly (same text, seed and model); None if not."""
        generation = self._drawn.get(record.id)
        if generation is not None:
            self._drawn.move_to_end(record.id)
            return generation
        try:
            ticket = self.worker.submit(
                record.text,
                record.count,
                record.seed,
                guild_id=record.guild_id,
                deadline_s=self.config.reply_deadline_s,
            )
            generation = await ticket.future
        except QueueFull:
            await send_ephemeral(interaction, "I'm very busy right now. Try that button again in a minute.")
            return None
        except WorkerError:
            await send_ephemeral(interaction, "I couldn't redraw this emoji just now. Please try again.")
            return None
        if generation.model_name != record.model_name:
            await send_ephemeral(
                interaction,
                "This emoji was drawn by a model this server no longer uses, so I can't redraw it. "
                "Make a new one with `/emoji`!",
            )
            return None
        self._remember(record.id, generation)
        return generation

    def _remember(self, result_id: int, generation: Generation) -> None:
        self._drawn[result_id] = generation
        while len(self._drawn) > DRAWN_CACHE:
            self._drawn.popitem(last=False)

    @staticmethod
    def _result(
        record: ResultRecord,
        generation: Generation,
        *,
        pick: int | None = None,
        saved: dict[SaveKind, str] | None = None,
    ) -> Result:
        return Result(record, generation.drawing, pick=pick, saved=saved or {})

    # ----------------------------------------------------------------- answers

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
