"""``/emoji-train``: a server teaches the bot its own emoji, then fine-tunes its own model.

Admins (Create Expressions; the default permission hides the group from everyone else, and the
cog's ``interaction_check`` checks again, see ``bot.checks``) add images with a name, import the
server's custom emoji, list and remove them, start a fine-tune and follow its progress message,
cancel it, or reset the server to the base model. Everything is per server: submissions, runs and
the model are keyed by guild id.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks, validation
from bot.replies import send_ephemeral
from bot.store import LimitReached, RunAlreadyActive, RunStatus, StoreError, Submission
from bot.training import RunState, TrainingError
from model import MAX_TEXT_CHARS  # torch-free

if TYPE_CHECKING:
    from bot.app import EmojiBot

log = logging.getLogger(__name__)

PAGE_SIZE = 10
BAR_WIDTH = 20
EMBED_COLOUR = discord.Colour(0x5865F2)


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s"


def short(error: str | None, limit: int = 300) -> str:
    """An error for a message (Discord caps messages at 2,000 characters)."""
    error = (error or "unknown error").strip()
    return error if len(error) <= limit else error[: limit - 1] + "…"


def progress_bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def progress_text(state: RunState) -> str:
    """The progress message, from start to its final word (what a server admin watches)."""
    head = f"🧠 Training this server's model on **{state.names}** emoji"
    if state.outcome is RunStatus.SUCCEEDED:
        loss = f", final loss {state.loss:.3f}" if state.loss is not None else ""
        return (
            f"✅ **Training finished**: {state.names} emoji learned in {duration(state.seconds or 0)} "
            f"({state.total} steps{loss}).\n`{progress_bar(1.0)}` 100%\n"
            "`/emoji` in this server now uses the new model."
        )
    if state.outcome is RunStatus.CANCELLED:
        return (
            f"🛑 **Training cancelled** at step {state.step}/{state.total}. "
            "This server keeps its previous model."
        )
    if state.outcome is RunStatus.FAILED:
        return (
            f"⚠️ **Training failed** at step {state.step}/{state.total}: {short(state.error)}.\n"
            "This server keeps its previous model."
        )
    if state.phase == "starting" or (state.phase == "training" and state.step == 0):
        line = "starting up…"
    elif state.phase == "loading":
        line = "all steps done; loading the new model…"
    else:
        loss = f" · loss {state.loss:.3f}" if state.loss is not None else ""
        eta = f" · about {duration(state.eta_s)} left" if state.eta_s is not None else ""
        line = f"step {state.step}/{state.total}{loss}{eta}"
    note = "\nCancelling…" if state.cancel_requested else ""
    return f"{head}\n`{progress_bar(state.fraction)}` {state.fraction:.0%} · {line}{note}"


def emoji_text(name: str) -> str:
    """A custom emoji's name as words: ``party_parrot`` → "party parrot"."""
    return " ".join(name.replace("_", " ").split())


class ListView(checks.ExpressionsView):
    """Previous/next buttons over a server's training emoji (the list is ephemeral: one viewer)."""

    def __init__(self, cog: Training, guild_id: int, total: int, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.cog = cog
        self.guild_id = guild_id
        self.total = total
        self.page = 0
        self.origin: discord.Interaction | None = None
        self._sync()

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))

    def _sync(self) -> None:
        self.previous.disabled = self.page <= 0
        self.next.disabled = self.page >= self.pages - 1

    async def embed(self) -> discord.Embed:
        rows = await asyncio.to_thread(self.cog.store.page, self.guild_id, self.page * PAGE_SIZE, PAGE_SIZE)
        return list_embed(rows, self.page, self.pages, self.total)

    async def _turn(self, interaction: discord.Interaction, delta: int) -> None:
        self.total = await asyncio.to_thread(self.cog.store.count, self.guild_id)
        self.page = max(0, min(self.pages - 1, self.page + delta))
        self._sync()
        await interaction.response.edit_message(embed=await self.embed(), view=self)

    @discord.ui.button(label="Previous", emoji="◀️", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, button: discord.ui.Button[ListView]) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label="Next", emoji="▶️", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button[ListView]) -> None:
        await self._turn(interaction, +1)

    async def on_timeout(self) -> None:
        self.previous.disabled = self.next.disabled = True
        if self.origin is not None:
            try:
                await self.origin.edit_original_response(view=self)
            except discord.HTTPException as exc:
                log.debug("Could not disable the list buttons: %s", exc)


def list_embed(rows: list[Submission], page: int, pages: int, total: int) -> discord.Embed:
    embed = discord.Embed(title=f"Training emoji ({total})", colour=EMBED_COLOUR)
    lines = [
        f"{page * PAGE_SIZE + i + 1}. **{discord.utils.escape_markdown(s.name)}**"
        f"{' (imported)' if s.source == 'import' else ''} · <t:{int(s.created_at)}:d> by <@{s.author_id}>"
        for i, s in enumerate(rows)
    ]
    embed.description = "\n".join(lines) or "None yet: add some with `/emoji-train add`."
    embed.set_footer(text=f"Page {page + 1}/{pages}")
    return embed


class ResetView(checks.ExpressionsView):
    """Confirm before forgetting the server's model."""

    def __init__(self, cog: Training, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.cog = cog
        self.origin: discord.Interaction | None = None

    @discord.ui.button(label="Reset to the base model", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[ResetView]) -> None:
        assert interaction.guild_id is not None  # interaction_check
        self.stop()
        content = await self.cog.reset_guild(interaction.guild_id)
        await interaction.response.edit_message(content=content, view=None)

    @discord.ui.button(label="Keep it", style=discord.ButtonStyle.secondary)
    async def keep(self, interaction: discord.Interaction, button: discord.ui.Button[ResetView]) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing changed.", view=None)

    async def on_timeout(self) -> None:
        if self.origin is not None:
            try:
                await self.origin.edit_original_response(
                    content="Reset not confirmed; nothing changed.", view=None
                )
            except discord.HTTPException as exc:
                log.debug("Could not close the reset prompt: %s", exc)


class Training(commands.Cog):
    """The /emoji-train group."""

    train = app_commands.Group(
        name="emoji-train",
        description="Teach this server's model your own emoji",
        guild_only=True,
        default_permissions=discord.Permissions(create_expressions=True),
    )

    def __init__(self, bot: EmojiBot) -> None:
        self.bot = bot
        self.config = bot.config
        self.store = bot.training_store  # opened, restored and closed by the bot
        self.models = bot.guild_models
        self.manager = bot.trainer

    async def interaction_check(self, interaction: discord.Interaction) -> bool:  # type: ignore[override]
        """Every command here manages the server's training: Create Expressions, inside a server.

        A refusal raises ``checks.Refused``, answered by the bot's app-command error handler.
        """
        return checks.require_create_expressions(interaction)

    # ----------------------------------------------------------------- helpers

    async def _refuse(self, interaction: discord.Interaction, message: str) -> None:
        await send_ephemeral(interaction, message)

    @staticmethod
    def _guild(interaction: discord.Interaction) -> int:
        """The guild id (``interaction_check`` let only interactions inside a server through)."""
        assert interaction.guild_id is not None
        return interaction.guild_id

    def _clean_name(self, name: str) -> str:
        """The name as the model will read it; raises ValueError with a message for the user."""
        try:
            cleaned = self.bot.worker.clean_text(name)
        except ValueError as exc:
            raise ValueError("Give the emoji a name made of words, e.g. `우리팀 마스코트`.") from exc
        limit = self.config.training_max_name_chars
        if len(cleaned) > limit:
            raise ValueError(f"That name is {len(cleaned)} characters; keep it to {limit}.")
        return cleaned

    # ----------------------------------------------------------------- submissions

    @train.command(name="add")
    @app_commands.describe(
        name="The words that should draw it (e.g. 우리팀 마스코트, party parrot)",
        image="PNG, JPEG, GIF or WebP; square images work best",
    )
    async def add(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, MAX_TEXT_CHARS],
        image: discord.Attachment,
    ) -> None:
        """Add one emoji for this server's model to learn."""
        guild_id = self._guild(interaction)
        try:
            name = self._clean_name(name)
            validation.check_size(image.size, self.config.training_max_upload_bytes)
        except ValueError as exc:
            await self._refuse(interaction, str(exc))
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            data = await image.read()
            normalised = await asyncio.to_thread(
                validation.normalise, data, max_bytes=self.config.training_max_upload_bytes
            )
            submission = await asyncio.to_thread(
                self.store.add,
                guild_id,
                name,
                normalised,
                interaction.user.id,
                limit=self.config.training_max_submissions,
            )
        except (validation.InvalidImage, StoreError) as exc:
            await interaction.followup.send(f"❌ {exc}", ephemeral=True)
            return
        except discord.HTTPException:
            log.warning("Could not download attachment %s", image.id, exc_info=True)
            await interaction.followup.send("❌ I couldn't download that file. Try again.", ephemeral=True)
            return
        count = await asyncio.to_thread(self.store.count, guild_id)
        embed = discord.Embed(
            description=(
                f"Added **{discord.utils.escape_markdown(submission.name)}** "
                f"({count}/{self.config.training_max_submissions}). "
                "This is what the model will learn from. Run `/emoji-train start` when you're done adding."
            ),
            colour=EMBED_COLOUR,
        )
        embed.set_thumbnail(url="attachment://preview.png")
        file = discord.File(io.BytesIO(submission.png), filename="preview.png")
        await interaction.followup.send(embed=embed, file=file, ephemeral=True)
        log.info("Guild %s: %s added training emoji %r", guild_id, interaction.user.id, submission.name)

    @train.command(name="import")
    async def import_(self, interaction: discord.Interaction) -> None:
        """Add this server's custom emoji as training emoji (party_parrot → "party parrot")."""
        guild_id = self._guild(interaction)
        assert interaction.guild is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        emojis = list(interaction.guild.emojis)
        already = await asyncio.to_thread(self.store.imported_emoji_ids, guild_id)
        added: list[str] = []
        skipped: dict[str, int] = {}

        def skip(reason: str) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        for emoji in emojis:
            if emoji.id in already:
                skip("already stored")
                continue
            try:
                name = self._clean_name(emoji_text(emoji.name))
                data = await emoji.read()
                normalised = await asyncio.to_thread(
                    validation.normalise, data, max_bytes=self.config.training_max_upload_bytes
                )
                await asyncio.to_thread(
                    self.store.add,
                    guild_id,
                    name,
                    normalised,
                    interaction.user.id,
                    limit=self.config.training_max_submissions,
                    aliases=[emoji.name],
                    source="import",
                    source_emoji_id=emoji.id,
                )
            except LimitReached:
                skip("over the limit")
                continue
            except StoreError:
                skip("already stored")
                continue
            except (ValueError, discord.HTTPException) as exc:
                log.info("Guild %s: could not import emoji %s: %s", guild_id, emoji.id, exc)
                skip("could not be read")
                continue
            added.append(name)
        if not emojis:
            message = "This server has no custom emoji to import."
        else:
            message = f"📥 Imported **{len(added)}** emoji"
            if added:
                message += ": " + ", ".join(discord.utils.escape_markdown(a) for a in added[:20])
                message += " …" if len(added) > 20 else ""
            message += f". Skipped **{sum(skipped.values())}**"
            if skipped:
                message += " (" + ", ".join(f"{n} {why}" for why, n in skipped.items()) + ")"
            message += "."
        await interaction.followup.send(message, ephemeral=True)

    @train.command(name="list")
    async def list_(self, interaction: discord.Interaction) -> None:
        """Show this server's training emoji."""
        guild_id = self._guild(interaction)
        total = await asyncio.to_thread(self.store.count, guild_id)
        view = ListView(self, guild_id, total, timeout=self.config.view_timeout_s)
        view.origin = interaction
        await interaction.response.send_message(embed=await view.embed(), view=view, ephemeral=True)

    @train.command(name="remove")
    @app_commands.describe(name="The training emoji's name")
    async def remove(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, MAX_TEXT_CHARS]
    ) -> None:
        """Forget one training emoji."""
        guild_id = self._guild(interaction)
        removed = await asyncio.to_thread(self.store.remove, guild_id, name)  # found by name_key
        if removed is None:
            await self._refuse(
                interaction, f"There is no training emoji named **{discord.utils.escape_markdown(name)}**."
            )
            return
        await interaction.response.send_message(
            f"🗑️ Removed **{discord.utils.escape_markdown(removed.name)}**. "
            "The current model still knows it until you run `/emoji-train start` again.",
            ephemeral=True,
        )

    @remove.autocomplete("name")
    @checks.create_expressions()  # a member without it is offered nothing
    async def remove_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = await asyncio.to_thread(self.store.names, self._guild(interaction), current, 25)
        return [app_commands.Choice(name=name, value=name) for name in names]

    # ----------------------------------------------------------------- the model

    @train.command(name="reset")
    async def reset(self, interaction: discord.Interaction) -> None:
        """Forget this server's trained model and go back to the base model (asks first)."""
        guild_id = self._guild(interaction)
        if self.manager.active(guild_id) is not None:
            await self._refuse(interaction, "A training run is in progress; `/emoji-train cancel` it first.")
            return
        if not await asyncio.to_thread(self.models.has_own, guild_id):
            await self._refuse(interaction, "This server already uses the base model.")
            return
        view = ResetView(self, timeout=self.config.view_timeout_s)
        view.origin = interaction
        await interaction.response.send_message(
            "Reset this server to the base model? Its trained model is deleted; the training emoji stay, "
            "so you can train again later.",
            view=view,
            ephemeral=True,
        )

    async def reset_guild(self, guild_id: int) -> str:
        """Confirmed reset: the answer for the user (a run started since the prompt keeps the model)."""
        try:
            await asyncio.to_thread(self.models.reset, guild_id)
        except RunAlreadyActive as exc:
            return str(exc)
        return "↩️ This server is back on the base model. Its training emoji are kept."

    @train.command(name="start")
    async def start(self, interaction: discord.Interaction) -> None:
        """Fine-tune this server's model on its training emoji (takes a few minutes)."""
        guild_id = self._guild(interaction)
        try:
            state = await self.manager.start(guild_id, interaction.user.id)
        except TrainingError as exc:  # an everyday answer ("already training"), not an error
            await self._refuse(interaction, str(exc))
            return
        message: discord.InteractionMessage | None = None
        try:
            await interaction.response.send_message(progress_text(state))
            message = await interaction.original_response()
        except discord.HTTPException:
            log.warning("Could not post the progress of run %s", state.run.id, exc_info=True)
        await self._follow(interaction, message, state)

    async def _follow(
        self, interaction: discord.Interaction, message: discord.InteractionMessage | None, state: RunState
    ) -> None:
        """Edit the progress message every few seconds; return at the first tick after the run finished.

        A plain sleep between ticks (not a wait on ``state.done``): a sleep is a timer any event loop
        harness (SimCord's virtual clock included) understands, and the last edit comes at most one
        interval after the run ends.
        """
        shown = progress_text(state)
        while True:
            finished = state.done.done()
            if not finished:
                await asyncio.sleep(self.config.training_progress_interval_s)
            content = progress_text(state)
            if content != shown and await self._show(interaction, message, content):
                shown = content
            if finished:
                return

    async def _show(
        self, interaction: discord.Interaction, message: discord.InteractionMessage | None, content: str
    ) -> bool:
        """Edit the progress message; after 15 minutes the token is dead, so edit it as the bot."""
        try:
            await interaction.edit_original_response(content=content)
            return True
        except discord.HTTPException as exc:
            log.debug("Could not edit the progress through the interaction: %s", exc)
        if message is None:
            return False
        try:
            await message.channel.get_partial_message(message.id).edit(content=content)
            return True
        except discord.HTTPException:
            log.warning("Could not edit the progress message %s", message.id, exc_info=True)
            return False

    @train.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """How this server's training is going, and which model it uses."""
        guild_id = self._guild(interaction)
        state = self.manager.active(guild_id)
        count = await asyncio.to_thread(self.store.count, guild_id)
        lines = [f"Training emoji: **{count}**/{self.config.training_max_submissions}"]
        if state is not None:
            lines.insert(0, progress_text(state))
        else:
            run = await asyncio.to_thread(self.store.latest_run, guild_id)
            own = await asyncio.to_thread(self.models.has_own, guild_id)
            lines.append("Model: **this server's own**" if own else "Model: **base**")
            if run is None:
                lines.append("No training run yet: `/emoji-train start` when you've added some emoji.")
            else:
                when = f"<t:{int(run.finished_at or run.started_at)}:R>"
                took = duration(run.seconds or 0)
                detail = {
                    RunStatus.SUCCEEDED: f"✅ succeeded {when} ({run.steps} steps, {took})",
                    RunStatus.CANCELLED: f"🛑 cancelled {when}",
                    RunStatus.FAILED: f"⚠️ failed {when}: {short(run.error)}",
                }.get(run.status, run.status.value)
                lines.append(f"Last run: {detail}")
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @train.command(name="cancel")
    async def cancel(self, interaction: discord.Interaction) -> None:
        """Stop this server's training run; the server keeps its previous model."""
        guild_id = self._guild(interaction)
        state = self.manager.cancel(guild_id)
        if state is None:
            await self._refuse(interaction, "Nothing is training in this server right now.")
            return
        await interaction.response.send_message(
            "🛑 Cancelling the training run; the server keeps its previous model.", ephemeral=True
        )


async def setup(bot: EmojiBot) -> None:
    await bot.add_cog(Training(bot))
