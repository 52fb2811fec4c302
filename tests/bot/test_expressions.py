"""Saving a result as a server emoji or sticker through SimCord: permissions, slots, Discord errors."""

from __future__ import annotations

import base64
import io

import discord
import pytest
from PIL import Image

from tests.bot.simcord_helpers import clicks_at_once

pytestmark = [pytest.mark.asyncio, pytest.mark.simcord(settle_timeout=30)]

CAN_CREATE = discord.Permissions(create_expressions=True)


def setup_guild(env, *, bot_can_create: bool = True):
    guild = env.create_guild()
    makers = guild.create_role("Emoji makers", permissions=CAN_CREATE)
    overwrites = {} if bot_can_create else {guild.me: discord.PermissionOverwrite(create_expressions=False)}
    channel = guild.create_text_channel("general", overwrites=overwrites)
    alice = guild.add_member(env.create_user("alice"))  # no Create Expressions
    carol = guild.add_member(env.create_user("carol"), roles=[makers])
    return guild, channel, alice, carol


def custom_id(message, part: str) -> str:
    """The custom_id of the one button whose custom_id contains ``part``."""
    ids = [c["custom_id"] for row in message.components for c in row["components"] if part in c["custom_id"]]
    assert len(ids) == 1, ids
    return ids[0]


def emoji_posts(env) -> list:
    return [r for r in env.http_requests if r.method == "POST" and r.path.endswith("/emojis")]


def sticker_posts(env) -> list:
    return [r for r in env.http_requests if r.method == "POST" and r.path.endswith("/stickers")]


def told(result):
    """The private message a click was answered with (a follow-up once the click was deferred)."""
    return result.followups[-1] if result.followups else result.response


async def generate(member, channel, text="축하해", **options):
    result = await member.slash(channel, "emoji", text=text, **options)
    assert result.response.attachments, result.response.content
    return result.response


# --------------------------------------------------------------------------------------- emoji


async def test_member_with_permission_adds_a_128px_emoji_named_from_the_text(simcord_env):
    guild, channel, alice, carol = setup_guild(simcord_env)
    message = await generate(alice, channel)

    saved = await carol.click(message, custom_id=custom_id(message, "save-emoji"))

    assert told(saved).ephemeral and "Added" in told(saved).content
    assert ":chukhahae:" in told(saved).content
    assert [e.name for e in simcord_env.bot.get_guild(guild.id).emojis] == ["chukhahae"]
    (post,) = emoji_posts(simcord_env)
    header, encoded = post.json["image"].split(",", 1)
    data = base64.b64decode(encoded)
    assert header == "data:image/png;base64" and len(data) <= 256 * 1024
    uploaded = Image.open(io.BytesIO(data))
    assert (uploaded.size, uploaded.mode) == ((128, 128), "RGBA")
    assert str(carol.id) in post.reason  # the audit log names who added it


async def test_english_and_emoji_only_texts_get_valid_names(simcord_env):
    guild, channel, alice, carol = setup_guild(simcord_env)
    for text, seed, expected in [("Party Cat!", 1, "party_cat"), ("🎉🥳", 5, "emoji_5")]:
        message = await generate(carol, channel, text=text, seed=seed)
        saved = await carol.click(message, custom_id=custom_id(message, "save-emoji"))
        assert f":{expected}:" in told(saved).content
    assert sorted(e.name for e in simcord_env.bot.get_guild(guild.id).emojis) == ["emoji_5", "party_cat"]


async def test_member_without_permission_is_refused(simcord_env):
    guild, channel, alice, carol = setup_guild(simcord_env)
    message = await generate(alice, channel)

    refused = await alice.click(message, custom_id=custom_id(message, "save-emoji"))

    assert refused.response.ephemeral and "You need the **Create Expressions**" in refused.response.content
    assert not emoji_posts(simcord_env)


async def test_bot_without_permission_says_so(simcord_env):
    guild, channel, alice, carol = setup_guild(simcord_env, bot_can_create=False)
    message = await generate(alice, channel)

    refused = await carol.click(message, custom_id=custom_id(message, "save-emoji"))

    assert refused.response.ephemeral and "I need the **Create Expressions**" in refused.response.content
    assert not emoji_posts(simcord_env)


async def test_full_emoji_slots_are_explained(simcord_env):
    guild, channel, alice, carol = setup_guild(simcord_env)
    for i in range(50):
        guild.create_emoji(f"old_{i}")
    message = await generate(alice, channel)

    refused = await carol.click(message, custom_id=custom_id(message, "save-emoji"))

    assert refused.response.ephemeral and "no free emoji slots (50/50)" in refused.response.content
    assert not emoji_posts(simcord_env)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, 30008, "no free emoji slots"),
        (403, 50013, "I need the **Create Expressions**"),
        (400, 50035, "Discord refused"),
    ],
)
async def test_discord_errors_become_clear_messages(simcord_env, status, code, expected):
    guild, channel, alice, carol = setup_guild(simcord_env)
    message = await generate(alice, channel)
    simcord_env.inject_error("POST", "/guilds/*/emojis", status=status, code=code, message="nope")

    failed = await carol.click(message, custom_id=custom_id(message, "save-emoji"))

    assert told(failed).ephemeral and expected in told(failed).content
    assert not simcord_env.bot.get_guild(guild.id).emojis


# --------------------------------------------------------------------------------------- stickers


async def test_member_with_permission_adds_a_320px_sticker_with_a_unicode_tag(simcord_env):
    guild, channel, alice, carol = setup_guild(simcord_env)
    message = await generate(alice, channel, text="생일 축하해")

    saved = await carol.click(message, custom_id=custom_id(message, "save-sticker"))

    assert told(saved).ephemeral and "Added the sticker" in told(saved).content
    (sticker,) = simcord_env.bot.get_guild(guild.id).stickers
    assert sticker.name == "생일 축하해"
    assert sticker.emoji and not sticker.emoji.isascii()  # a Unicode emoji as the required tag
    stored = simcord_env.backend.get_guild(guild.id).stickers[sticker.id]  # what Discord keeps
    uploaded = Image.open(io.BytesIO(simcord_env.backend.cdn.get(stored.url)))
    assert (uploaded.format, uploaded.size, uploaded.mode) == ("PNG", (320, 320), "RGBA")
    assert str(carol.id) in sticker_posts(simcord_env)[0].reason


async def test_sticker_needs_permission_and_free_slots(simcord_env):
    guild, channel, alice, carol = setup_guild(simcord_env)
    message = await generate(alice, channel)

    refused = await alice.click(message, custom_id=custom_id(message, "save-sticker"))
    assert refused.response.ephemeral and "Create Expressions" in refused.response.content

    for i in range(5):
        guild.create_sticker(f"old {i}", tags="🙂")
    full = await carol.click(message, custom_id=custom_id(message, "save-sticker"))
    assert full.response.ephemeral and "no free sticker slots (5/5)" in full.response.content
    assert not sticker_posts(simcord_env)


async def test_save_buttons_are_absent_in_dms(simcord_env):
    user = simcord_env.create_user("dave")
    result = await user.slash("emoji", text="축하해")

    labels = [c["label"] for row in result.response.components for c in row["components"]]
    assert labels == ["Reroll"]


# --------------------------------------------------------------------------------------- at most once


def button(message, part: str) -> dict:
    return next(c for row in message.components for c in row["components"] if part in c["custom_id"])


async def test_saving_an_emoji_twice_adds_it_once_and_the_button_says_what_was_saved(simcord_env):
    guild, channel, alice, carol = setup_guild(simcord_env)
    message = await generate(alice, channel)
    save = custom_id(message, "save-emoji")

    await carol.click(message, custom_id=save)
    # The button is disabled now; a client that still shows the old message can send the click anyway.
    (again,) = await clicks_at_once(simcord_env, channel, message, [(carol, save)])

    shown = button(simcord_env.backend.get_message(channel.id, message.id), "save-emoji")
    assert shown["disabled"] and ":chukhahae:" in shown["label"]
    assert "Already added as :chukhahae:" in told(again).content and told(again).ephemeral
    assert len(emoji_posts(simcord_env)) == 1
    assert not button(simcord_env.backend.get_message(channel.id, message.id), "save-sticker")["disabled"]


async def test_clicks_at_the_same_moment_save_one_emoji_and_one_sticker(simcord_env):
    guild, channel, alice, carol = setup_guild(simcord_env)
    message = await generate(alice, channel)
    presses = [(carol, custom_id(message, "save-emoji"))] * 3 + [
        (carol, custom_id(message, "save-sticker"))
    ] * 3

    results = await clicks_at_once(simcord_env, channel, message, presses)

    assert len(emoji_posts(simcord_env)) == 1 and len(sticker_posts(simcord_env)) == 1
    answers = [told(r).content for r in results]
    assert sum("Added" in a and "Already" not in a for a in answers) == 2  # one emoji, one sticker
    assert sum("Already added" in a for a in answers) == 4  # every other click is told, none is silent
    assert len(simcord_env.bot.get_guild(guild.id).emojis) == 1


async def test_a_save_after_a_restart_still_knows_what_was_saved(simcord_env, bot_config):
    from bot.app import create_bot

    guild, channel, alice, carol = setup_guild(simcord_env)
    message = await generate(alice, channel)
    save = custom_id(message, "save-sticker")
    await carol.click(message, custom_id=save)
    await simcord_env.bot.close()
    fresh = create_bot(bot_config)
    try:
        await simcord_env.restart_bot(fresh)
        (again,) = await clicks_at_once(simcord_env, channel, message, [(carol, save)])
        emoji = await carol.click(message, custom_id=custom_id(message, "save-emoji"))
    finally:
        fresh.worker.stop()
        fresh.worker.join(timeout=10)

    assert "Already added" in told(again).content and len(sticker_posts(simcord_env)) == 1
    assert "Added" in told(emoji).content and len(emoji_posts(simcord_env)) == 1  # redrawn after the restart
