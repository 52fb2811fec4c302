"""Saving a result as a server emoji or sticker through SimCord: permissions, slots, Discord errors."""

from __future__ import annotations

import base64
import io

import discord
import pytest
from PIL import Image

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


async def generate(member, channel, text="축하해", **options):
    result = await member.slash(channel, "emoji", text=text, **options)
    assert result.response.attachments, result.response.content
    return result.response


# --------------------------------------------------------------------------------------- emoji


async def test_member_with_permission_adds_a_128px_emoji_named_from_the_text(simcord_env):
    guild, channel, alice, carol = setup_guild(simcord_env)
    message = await generate(alice, channel)

    saved = await carol.click(message, custom_id=custom_id(message, "save-emoji"))

    assert saved.response.ephemeral and "Added" in saved.response.content
    assert ":chukhahae:" in saved.response.content
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
        assert f":{expected}:" in saved.response.content
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

    assert failed.response.ephemeral and expected in failed.response.content
    assert not simcord_env.bot.get_guild(guild.id).emojis


# --------------------------------------------------------------------------------------- stickers


async def test_member_with_permission_adds_a_320px_sticker_with_a_unicode_tag(simcord_env):
    guild, channel, alice, carol = setup_guild(simcord_env)
    message = await generate(alice, channel, text="생일 축하해")

    saved = await carol.click(message, custom_id=custom_id(message, "save-sticker"))

    assert saved.response.ephemeral and "Added the sticker" in saved.response.content
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
