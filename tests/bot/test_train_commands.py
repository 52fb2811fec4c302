"""/emoji-train end to end through SimCord: the real bot, a real SQLite store, a real fine-tune process."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import struct
import unicodedata
import zlib

import discord
import pytest
import simcord
from PIL import Image

from bot.checks import Refused
from tests.support import png

pytestmark = [pytest.mark.asyncio, pytest.mark.simcord(settle_timeout=90)]

CAN_CREATE = discord.Permissions(create_expressions=True)


# --------------------------------------------------------------------------------------- helpers


def setup_guild(env, name: str = "guild"):
    guild = env.create_guild(name=name)
    makers = guild.create_role("Emoji makers", permissions=CAN_CREATE)
    channel = guild.create_text_channel("general")
    carol = guild.add_member(env.create_user(f"carol-{name}"), roles=[makers])  # may train
    alice = guild.add_member(env.create_user(f"alice-{name}"))  # may not
    return guild, channel, carol, alice


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid 1-bit PNG with 400 million pixels that is only ~60 KB on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def cog(env):
    return env.bot.get_cog("Training")


def stored_names(env, guild) -> list[str]:
    return sorted(s.name for s in cog(env).store.all(guild.id))


async def add(member, channel, name: str, data: bytes, filename: str = "emoji.png"):
    return await member.slash(channel, "emoji-train add", name=name, image=(filename, data))


def buttons(message) -> dict[str, dict]:
    return {c["label"]: c for row in message.components for c in row["components"]}


def field(message, name: str) -> str:
    return next(f.value for f in message.embeds[0].fields if f.name == name)


def command_id(env, name: str) -> int:
    for scope in env.backend.commands.values():
        for command in scope.values():
            if command["name"] == name:
                return int(command["id"])
    raise AssertionError(f"no command {name}")


def progress_edits(env) -> list[str]:
    return [
        r.json["content"]
        for r in env.http_requests
        if r.method == "PATCH" and r.path.endswith("/messages/@original") and r.json and r.json.get("content")
    ]


async def wait_for(predicate, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out waiting")


# --------------------------------------------------------------------------------------- submissions


async def test_admin_adds_an_emoji_and_sees_the_normalised_preview(simcord_env):
    guild, channel, carol, _ = setup_guild(simcord_env)

    result = await add(carol, channel, "우리팀 마스코트", png(size=(120, 60)))

    message = result.response
    assert message.ephemeral
    assert "Added **우리팀 마스코트**" in message.embeds[0].description
    (preview,) = message.attachments
    image = Image.open(io.BytesIO(await preview.read()))
    assert (image.format, image.size, image.mode) == ("PNG", (72, 72), "RGBA")
    assert image.getpixel((36, 36))[3] == 255 and image.getpixel((36, 3))[3] == 0  # padded to square
    assert stored_names(simcord_env, guild) == ["우리팀 마스코트"]


async def test_duplicate_name_or_image_gets_a_clear_message(simcord_env):
    guild, channel, carol, _ = setup_guild(simcord_env)
    await add(carol, channel, "party parrot", png(mark=1))

    same_name = await add(carol, channel, "Party Parrot", png(mark=2))
    same_image = await add(carol, channel, "another bird", png(mark=1), filename="copy.png")

    assert "already a training emoji named **party parrot**" in same_name.response.content
    assert "already stored as **party parrot**" in same_image.response.content
    assert same_name.response.ephemeral and same_image.response.ephemeral
    assert stored_names(simcord_env, guild) == ["party parrot"]


async def test_a_duplicate_name_is_echoed_as_text_not_as_markdown(simcord_env):
    guild, channel, carol, _ = setup_guild(simcord_env)
    await add(carol, channel, "||secret|| [link](https://evil.example)", png(mark=1))

    same_name = await add(carol, channel, "||secret|| [link](https://evil.example)", png(mark=2))
    same_image = await add(carol, channel, "another", png(mark=1), filename="copy.png")

    for answer in (same_name.response.content, same_image.response.content):
        assert r"\|\|secret\|\|" in answer and r"\[link]" in answer, answer
        assert "||secret||" not in answer


@pytest.mark.parametrize(
    ("stored_as", "typed"),
    [
        (unicodedata.normalize("NFD", "축하 고양이"), "축하 고양이"),  # a macOS file name
        ("축하 고양이", unicodedata.normalize("NFD", "축하 고양이")),  # typed on a Mac
        ("party\x07parrot", "party\x07parrot"),  # stored as "party parrot"
        ("Party  Parrot", "party parrot"),
    ],
)
async def test_remove_and_autocomplete_find_a_name_however_it_was_typed(simcord_env, stored_as, typed):
    guild, channel, carol, _ = setup_guild(simcord_env)
    await add(carol, channel, stored_as, png(mark=3))
    (name,) = stored_names(simcord_env, guild)

    suggested = await carol.autocomplete(channel, "emoji-train remove", "name", typed)
    removed = await carol.slash(channel, "emoji-train remove", name=typed)

    assert [c["value"] for c in suggested] == [name]
    assert "Removed" in removed.response.content, removed.response.content
    assert stored_names(simcord_env, guild) == []


def noise_png(side: int) -> bytes:
    image = Image.frombytes("RGBA", (side, side), os.urandom(side * side * 4))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


BAD_ATTACHMENTS = {
    "corrupt png": ("broken.png", png(mark=40)[:70] + b"\x00garbage\xff" * 40, "damaged"),
    "text named png": ("notes.png", b"this is not an image, just text\n" * 10, "isn't an image"),
    "20000x20000 png": ("bomb.png", huge_png(), "4096×4096"),
    "over the size limit": ("big.png", noise_png(300), "the limit is 100 KiB"),
    "svg": (
        "logo.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="72" height="72"><circle r="30"/></svg>',
        "SVG",
    ),
}


@pytest.mark.bot_config(training_max_upload_bytes=100 * 1024)
@pytest.mark.parametrize("case", list(BAD_ATTACHMENTS))
async def test_bad_attachments_get_a_clear_error_and_store_nothing(simcord_env, case):
    guild, channel, carol, _ = setup_guild(simcord_env)
    filename, data, expected = BAD_ATTACHMENTS[case]

    result = await add(carol, channel, "nope", data, filename=filename)

    assert result.response.ephemeral
    assert expected in result.response.content
    assert not result.response.attachments
    assert stored_names(simcord_env, guild) == []


@pytest.mark.bot_config(training_max_name_chars=10)
async def test_names_are_checked(simcord_env):
    guild, channel, carol, _ = setup_guild(simcord_env)

    too_long = await add(carol, channel, "a very long emoji name", png())
    blank = await add(carol, channel, "\u200b ", png())

    assert "keep it to 10" in too_long.response.content
    assert "name made of words" in blank.response.content
    assert stored_names(simcord_env, guild) == []


async def test_list_pages_with_buttons_and_remove(simcord_env):
    guild, channel, carol, _ = setup_guild(simcord_env)
    await add(carol, channel, "aaa first", png(mark=1))
    from bot.validation import normalise

    for i in range(11):
        data = png(colour=(10 * i, 100, 200, 255), mark=i)
        cog(simcord_env).store.add(
            guild.id, f"emoji {i:02d}", normalise(data, max_bytes=2**21), carol.id, limit=500
        )

    listed = await carol.slash(channel, "emoji-train list")

    message = listed.response
    assert message.ephemeral
    embed = message.embeds[0]
    assert embed.title == "Training emoji (12)" and embed.footer.text == "Page 1/2"
    assert embed.description.count("\n") == 9 and "**aaa first**" in embed.description
    assert buttons(message)["Previous"]["disabled"] and not buttons(message)["Next"]["disabled"]

    turned = await carol.click(message, label="Next")
    page_two = turned.response
    assert page_two.embeds[0].footer.text == "Page 2/2"
    assert (
        "**emoji 09**" in page_two.embeds[0].description and "**emoji 10**" in page_two.embeds[0].description
    )
    assert buttons(page_two)["Next"]["disabled"]

    removed = await carol.slash(channel, "emoji-train remove", name="EMOJI 10")
    assert "Removed **emoji 10**" in removed.response.content
    missing = await carol.slash(channel, "emoji-train remove", name="emoji 10")
    assert "no training emoji named" in missing.response.content
    assert len(stored_names(simcord_env, guild)) == 11


async def test_import_turns_custom_emoji_into_training_emoji(simcord_env):
    guild, channel, carol, _ = setup_guild(simcord_env)
    parrot = guild.create_emoji("party_parrot")
    logo = guild.create_emoji("team_logo")
    guild.create_emoji("no_image")  # its image cannot be downloaded
    blobs = simcord_env.backend.cdn._blobs  # SimCord keeps no emoji images: seed the CDN
    blobs[f"https://cdn.discordapp.com/emojis/{parrot.id}.png"] = png((0, 200, 0, 255))
    blobs[f"https://cdn.discordapp.com/emojis/{logo.id}.png"] = png((0, 0, 200, 255), size=(128, 96))

    first = await carol.slash(channel, "emoji-train import")
    again = await carol.slash(channel, "emoji-train import")

    assert first.response.ephemeral
    assert "Imported **2** emoji: party parrot, team logo" in first.response.content
    assert "Skipped **1** (1 could not be read)" in first.response.content
    assert "Imported **0** emoji" in again.response.content
    assert "2 already stored" in again.response.content
    assert stored_names(simcord_env, guild) == ["party parrot", "team logo"]
    imported = cog(simcord_env).store.get(guild.id, "party parrot")
    assert imported.source == "import" and imported.aliases == ["party_parrot"]


# --------------------------------------------------------------------------------------- permissions


async def test_member_without_permission_cannot_see_or_use_the_commands(simcord_env):
    guild, channel, carol, alice = setup_guild(simcord_env)
    with pytest.raises(simcord.SetupError):
        await alice.slash(channel, "emoji-train list")

    # An admin lets alice use the command anyway (integration settings): the handler still refuses.
    guild.set_command_permissions(command_id(simcord_env, "emoji-train"), {alice: True})
    for command, options in [
        ("emoji-train add", {"name": "sneaky", "image": ("x.png", png())}),
        ("emoji-train list", {}),
        ("emoji-train start", {}),
        ("emoji-train import", {}),
        ("emoji-train reset", {}),
    ]:
        refused = await alice.slash(channel, command, **options)
        assert refused.response.ephemeral, command
        assert "You need the **Create Expressions**" in refused.response.content, command
    assert stored_names(simcord_env, guild) == []
    assert cog(simcord_env).store.latest_run(guild.id) is None
    simcord.assert_error(simcord_env, Refused, contains="Create Expressions")  # discord.py's check failure


async def test_manage_expressions_alone_is_treated_as_discord_shows_it(simcord_env):
    guild, channel, _, _ = setup_guild(simcord_env)
    managers = guild.create_role("Managers", permissions=discord.Permissions(manage_expressions=True))
    dave = guild.add_member(simcord_env.create_user("dave"), roles=[managers])
    with pytest.raises(simcord.SetupError):  # hidden: default_permissions asks for Create Expressions
        await dave.slash(channel, "emoji-train list")

    guild.set_command_permissions(command_id(simcord_env, "emoji-train"), {dave: True})
    refused = await dave.slash(channel, "emoji-train add", name="sneaky", image=("x.png", png()))

    assert "You need the **Create Expressions**" in refused.response.content  # the same rule, also inside
    assert stored_names(simcord_env, guild) == []
    simcord.assert_error(simcord_env, Refused, contains="Create Expressions")


async def test_start_with_nothing_to_train_says_what_to_do(simcord_env):
    guild, channel, carol, _ = setup_guild(simcord_env)

    result = await carol.slash(channel, "emoji-train start")

    assert result.response.ephemeral and "no training emoji yet" in result.response.content
    assert cog(simcord_env).store.latest_run(guild.id) is None


# --------------------------------------------------------------------------------------- fine-tuning


@pytest.mark.slow
@pytest.mark.bot_config(finetune_steps=6, training_progress_interval_s=0.2)
async def test_tiny_fine_tune_serves_the_new_names_in_that_server_only(simcord_env):
    guild, channel, carol, alice = setup_guild(simcord_env, "home")
    other, other_channel, dave, _ = setup_guild(simcord_env, "away")
    await add(carol, channel, "우리팀 마스코트", png((250, 200, 0, 255), mark=3))
    await add(carol, channel, "party parrot", png((0, 180, 90, 255), mark=7))
    await add(dave, other_channel, "away logo", png((90, 0, 180, 255)))
    worker = simcord_env.bot.worker

    started = await carol.slash(channel, "emoji-train start")

    final = started.response
    assert not final.ephemeral  # the whole server sees the progress
    assert "Training finished" in final.content and "100%" in final.content
    edits = progress_edits(simcord_env)
    assert any("step " in e and "/6" in e and "loss" in e for e in edits), edits  # live progress
    assert edits[-1] == final.content
    assert worker.generator_for(guild.id) is not worker.base
    assert worker.generator_for(other.id) is worker.base

    here = await alice.slash(channel, "emoji", text="우리팀 마스코트", seed=1)
    there = await dave.slash(other_channel, "emoji", text="우리팀 마스코트", seed=1)
    assert here.response.attachments and there.response.attachments
    assert "server run" in field(here.response, "Model")
    assert "server run" not in field(there.response, "Model")

    # Isolation: the other server sees only its own emoji and its own (base) model.
    other_list = await dave.slash(other_channel, "emoji-train list")
    assert "away logo" in other_list.response.embeds[0].description
    assert "마스코트" not in other_list.response.embeds[0].description
    status = await carol.slash(channel, "emoji-train status")
    assert "succeeded" in status.response.content and "this server's own" in status.response.content
    other_status = await dave.slash(other_channel, "emoji-train status")
    assert "Model: **base**" in other_status.response.content

    # Reset (confirmed) → back to the base model, the training emoji stay.
    prompt = await carol.slash(channel, "emoji-train reset")
    confirmed = await carol.click(prompt.response, label="Reset to the base model")
    assert "back on the base model" in confirmed.response.content
    assert worker.generator_for(guild.id) is worker.base
    after = await alice.slash(channel, "emoji", text="우리팀 마스코트", seed=1)
    assert "server run" not in field(after.response, "Model")
    assert stored_names(simcord_env, guild) == ["party parrot", "우리팀 마스코트"]
    assert not list(cog(simcord_env).store.models_dir.joinpath(str(guild.id)).iterdir())


@pytest.mark.slow
@pytest.mark.bot_config(training_progress_interval_s=1000, training_max_concurrent_runs=1)
async def test_status_busy_and_cancel_while_training(simcord_env):
    guild, channel, carol, alice = setup_guild(simcord_env, "home")
    other, other_channel, dave, _ = setup_guild(simcord_env, "away")
    await add(carol, channel, "slow one", png(mark=2))
    await add(dave, other_channel, "waiting", png(mark=4))
    manager = cog(simcord_env).manager

    started = await carol.slash(channel, "emoji-train start")  # returns: the progress loop sleeps
    assert "starting up" in started.response.content
    state = manager.active(guild.id)
    await wait_for(lambda: state.step >= 1)

    status = await carol.slash(channel, "emoji-train status")
    assert f"/{state.total}" in status.response.content and "%" in status.response.content
    busy = await dave.slash(other_channel, "emoji-train start")
    assert "the most I run at once" in busy.response.content
    again = await carol.slash(channel, "emoji-train start")
    assert "already training" in again.response.content
    reset = await carol.slash(channel, "emoji-train reset")
    assert "cancel" in reset.response.content

    cancelled = await carol.slash(channel, "emoji-train cancel")
    assert "Cancelling" in cancelled.response.content
    await asyncio.wait_for(asyncio.shield(state.done), 60)
    await simcord_env.advance_time(1001)  # the progress loop's next tick

    assert "Training cancelled" in started.response.content
    run = cog(simcord_env).store.latest_run(guild.id)
    assert run.status == "cancelled" and 1 <= run.steps < run.total_steps
    assert simcord_env.bot.worker.generator_for(guild.id) is simcord_env.bot.worker.base
    assert manager.active(guild.id) is None
    nothing = await carol.slash(channel, "emoji-train cancel")
    assert "Nothing is training" in nothing.response.content


# --------------------------------------------------------------------------------------- restart


RESTART_GUILD = 987654321098765432


@pytest.fixture
def crashed_data_dir(bot_config):
    """A data dir as a SIGKILL mid-run leaves it: one good model, one run still marked running."""
    from bot.store import SubmissionStore
    from bot.validation import normalise
    from model.finetune import finetune

    store = SubmissionStore(bot_config.data_dir).open()
    examples = []
    for i, name in enumerate(["우리팀 마스코트", "party parrot"]):
        data = png((200, 40 * i, 90, 255), mark=i)
        store.add(RESTART_GUILD, name, normalise(data, max_bytes=2**21), 42, limit=500)
        examples.append((name, Image.open(io.BytesIO(data)).convert("RGBA")))
    good = store.start_run(RESTART_GUILD, 42, submissions=2, total_steps=2)
    finetune(
        examples, store.checkpoint_path(RESTART_GUILD, good.id), steps=2, device="cpu", label="server run 1"
    )
    store.finish_run(good.id, "succeeded", steps=2)
    crashed = store.start_run(RESTART_GUILD, 42, submissions=2, total_steps=300)
    half = store.checkpoint_path(RESTART_GUILD, crashed.id).with_name("run-2.pt123.tmp")
    half.write_bytes(b"half-written")
    store.close()
    return half


@pytest.mark.slow
async def test_restart_after_a_crash_serves_the_last_good_model(crashed_data_dir, simcord_env):
    guild = simcord_env.create_guild("home", id=RESTART_GUILD)
    makers = guild.create_role("Emoji makers", permissions=CAN_CREATE)
    channel = guild.create_text_channel("general")
    carol = guild.add_member(simcord_env.create_user("carol"), roles=[makers])

    drawn = await carol.slash(channel, "emoji", text="우리팀 마스코트", seed=3)
    status = await carol.slash(channel, "emoji-train status")

    assert "server run 1" in field(drawn.response, "Model")
    assert "Training emoji: **2**" in status.response.content
    assert "this server's own" in status.response.content
    assert "failed" in status.response.content and "interrupted" in status.response.content
    assert not crashed_data_dir.exists()


# --------------------------------------------------------------------------------------- failures


@pytest.mark.slow
@pytest.mark.bot_config(training_progress_interval_s=0.2, checkpoint="does/not/exist.pt")
async def test_a_failing_fine_tune_is_reported_and_the_model_kept(simcord_env):
    guild, channel, carol, _ = setup_guild(simcord_env)
    await add(carol, channel, "party parrot", png())

    started = await carol.slash(channel, "emoji-train start")

    assert "Training failed" in started.response.content
    assert "checkpoint not found" in started.response.content
    assert "keeps its previous model" in started.response.content
    assert simcord_env.bot.worker.generator_for(guild.id) is simcord_env.bot.worker.base
    assert cog(simcord_env).store.latest_run(guild.id).status == "failed"


@pytest.mark.slow
@pytest.mark.bot_config(training_progress_interval_s=1000)
async def test_a_killed_training_process_fails_the_run_and_the_bot_carries_on(simcord_env):
    guild, channel, carol, alice = setup_guild(simcord_env)
    await add(carol, channel, "party parrot", png())
    manager = cog(simcord_env).manager
    started = await carol.slash(channel, "emoji-train start")
    state = manager.active(guild.id)
    await wait_for(lambda: state.step >= 1)

    os.kill(state.process.pid, signal.SIGKILL)
    await asyncio.wait_for(asyncio.shield(state.done), 60)
    await simcord_env.advance_time(1001)

    assert "Training failed" in started.response.content
    assert "stopped unexpectedly" in started.response.content
    assert cog(simcord_env).store.latest_run(guild.id).status == "failed"
    drawn = await alice.slash(channel, "emoji", text="party parrot")
    assert drawn.response.attachments  # still serving, with the base model
    assert "server run" not in field(drawn.response, "Model")
