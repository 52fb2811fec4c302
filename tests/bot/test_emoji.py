"""/emoji end to end through SimCord: the real bot, the real model, what the user sees."""

from __future__ import annotations

import io
import threading

import pytest
import simcord
from PIL import Image

from tests.bot.simcord_helpers import stale_slash

pytestmark = [pytest.mark.asyncio, pytest.mark.simcord(settle_timeout=30)]

DEFER = 5  # interaction callback type: DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE


# --------------------------------------------------------------------------------------- helpers


def setup_guild(env):
    guild = env.create_guild()
    channel = guild.create_text_channel("general")
    alice = guild.add_member(env.create_user("alice"))
    bob = guild.add_member(env.create_user("bob"))
    return guild, channel, alice, bob


def custom_id(message, part: str) -> str:
    """The custom_id of the one button whose custom_id contains ``part``."""
    ids = [
        c["custom_id"]
        for row in message.components
        for c in row["components"]
        if part in c.get("custom_id", "")
    ]
    assert len(ids) == 1, ids
    return ids[0]


def buttons(message) -> list[dict]:
    return [c for row in message.components for c in row["components"]]


async def image(attachment) -> Image.Image:
    return Image.open(io.BytesIO(await attachment.read()))


def deferred(env, result) -> bool:
    """Whether the bot answered this interaction with a defer (callback type 5)."""
    return any(
        r.method == "POST" and r.path.endswith("/callback") and (r.json or {}).get("type") == DEFER
        for r in env.http_requests
    )


class Gate:
    """Holds the model inside draw until opened (a real thread blocking, as a slow GPU would)."""

    def __init__(self, generator, monkeypatch) -> None:
        self.event = threading.Event()
        original = generator.draw

        def gated(jobs):
            self.event.wait(20)
            return original(jobs)

        monkeypatch.setattr(generator, "draw", gated)

    def open_after(self, seconds: float, before=None) -> threading.Timer:
        def fire():
            if before is not None:
                before()
            self.event.set()

        timer = threading.Timer(seconds, fire)
        timer.start()
        return timer


# --------------------------------------------------------------------------------------- the image


async def test_emoji_defers_then_sends_a_320_rgba_png(simcord_env):
    guild, channel, alice, _ = setup_guild(simcord_env)

    result = await alice.slash(channel, "emoji", text="축하해")

    assert deferred(simcord_env, result)
    message = result.response
    assert message is not None and not message.ephemeral
    first, small = message.attachments
    assert first.filename.endswith(".png") and first.size <= 512 * 1024
    big = await image(first)
    assert (big.format, big.size, big.mode) == ("PNG", (320, 320), "RGBA")
    assert (await image(small)).size == (72, 72)
    assert big.info["prompt"] == "축하해"  # generation parameters travel in the PNG
    embed = message.embeds[0]
    assert "축하해" in embed.description
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Seed"].isdigit() and fields["Model"]


async def test_two_things_joined_by_plus_make_one_mashup_emoji(simcord_env):
    guild, channel, alice, _ = setup_guild(simcord_env)

    result = await alice.slash(channel, "emoji", text="고양이 + 왕관", seed=3)
    plain = await alice.slash(channel, "emoji", text="고양이", seed=3)

    message = result.response
    big, small = message.attachments
    assert (await image(big)).size == (320, 320) and (await image(small)).size == (72, 72)
    fields = {f.name: f.value for f in message.embeds[0].fields}
    assert fields["Mashup"] == "고양이 + 왕관"
    assert "Mashup" not in {f.name for f in plain.response.embeds[0].fields}
    assert await small.read() != await plain.response.attachments[1].read()  # the crown is on it


async def test_private_result_is_ephemeral(simcord_env):
    guild, channel, alice, bob = setup_guild(simcord_env)

    result = await alice.slash(channel, "emoji", text="party cat", private=True)

    assert result.ephemeral and result.response.ephemeral
    assert (await image(result.response.attachments[0])).size == (320, 320)
    assert all(not m.attachments for m in channel.history(viewer=bob))


async def test_same_text_and_seed_give_identical_bytes(simcord_env):
    guild, channel, alice, bob = setup_guild(simcord_env)

    one = await alice.slash(channel, "emoji", text="고양이", seed=42)
    two = await bob.slash(channel, "emoji", text="고양이", seed=42)
    other = await bob.slash(channel, "emoji", text="고양이", seed=43)

    first = await one.response.attachments[0].read()
    assert first == await two.response.attachments[0].read()
    assert first != await other.response.attachments[0].read()
    assert {f.value for f in one.response.embeds[0].fields if f.name == "Seed"} == {"42"}


async def test_count_shows_grid_candidates_and_pick_buttons(simcord_env):
    guild, channel, alice, bob = setup_guild(simcord_env)

    result = await alice.slash(channel, "emoji", text="happy dog", count=3, seed=7)

    message = result.response
    grid, *candidates = message.attachments
    assert (await image(grid)).size == (320, 320)
    assert len(candidates) == 3
    assert [(await image(c)).size for c in candidates] == [(72, 72)] * 3
    labels = [b["label"] for b in buttons(message)]
    assert labels[:3] == ["Pick 1", "Pick 2", "Pick 3"]
    assert not any("Add" in label for label in labels)  # saving needs one chosen image

    refused = await bob.click(message, custom_id=custom_id(message, "pick:2"))
    assert refused.response.ephemeral and "Only" in refused.response.content

    picked = await alice.click(message, custom_id=custom_id(message, "pick:2"))
    edited = picked.response
    assert edited.id == message.id  # edited in place, no new message
    big, small = edited.attachments
    assert (await image(big)).size == (320, 320)
    assert await small.read() == await candidates[1].read()  # the very candidate that was picked
    assert custom_id(edited, "save-emoji") and custom_id(edited, "save-sticker")
    assert "2 of 3" in str(edited.embeds[0].to_dict())


async def test_reroll_by_requester_gives_a_new_image(simcord_env):
    guild, channel, alice, bob = setup_guild(simcord_env)
    first = await alice.slash(channel, "emoji", text="축하해")

    again = await alice.click(first.response, custom_id=custom_id(first.response, "reroll"))

    assert again.response is not None and again.response.id != first.response.id
    assert again.response.attachments[0].size > 0
    assert await again.response.attachments[0].read() != await first.response.attachments[0].read()
    assert "축하해" in again.response.embeds[0].description


async def test_reroll_by_someone_else_is_refused(simcord_env):
    guild, channel, alice, bob = setup_guild(simcord_env)
    first = await alice.slash(channel, "emoji", text="축하해")
    before = len(channel.history())
    done = simcord_env.bot.worker.requests_done

    refused = await bob.click(first.response, custom_id=custom_id(first.response, "reroll"))

    assert refused.response.ephemeral
    assert "Only" in refused.response.content and "/emoji" in refused.response.content
    assert not refused.response.attachments
    assert len(channel.history()) == before  # nothing public, nothing generated
    assert simcord_env.bot.worker.requests_done == done


async def test_buttons_stay_live_long_after_the_interaction_token_expired(simcord_env, bot_config):
    guild, channel, alice, _ = setup_guild(simcord_env)
    result = await alice.slash(channel, "emoji", text="축하해")

    await simcord_env.advance_time(max(bot_config.view_timeout_s, 15 * 60) + 1)

    assert not any(b["disabled"] for b in buttons(result.response))
    again = await alice.click(result.response, custom_id=custom_id(result.response, "reroll"))
    assert again.response.attachments and again.response.id != result.response.id


async def test_buttons_posted_before_a_restart_are_answered_by_the_new_bot(simcord_env, bot_config):
    from bot.app import create_bot

    guild, channel, alice, bob = setup_guild(simcord_env)
    posted = (await alice.slash(channel, "emoji", text="happy dog", count=2, seed=7)).response
    candidates = [await a.read() for a in posted.attachments[1:]]
    await simcord_env.bot.close()
    fresh = create_bot(bot_config)  # a new process: nothing in memory but what it reads from disk
    try:
        await simcord_env.restart_bot(fresh)

        picked = await alice.click(posted, custom_id=custom_id(posted, "pick:2"))
        refused = await bob.click(posted, custom_id=custom_id(posted, "reroll"))
        rerolled = await alice.click(picked.response, custom_id=custom_id(picked.response, "reroll"))
    finally:
        fresh.worker.stop()
        fresh.worker.join(timeout=10)

    assert picked.response.id == posted.id
    assert await picked.response.attachments[1].read() == candidates[1]  # redrawn to the same bytes
    assert "2 of 2" in str(picked.response.embeds[0].to_dict())
    assert refused.response.ephemeral and "Only" in refused.response.content
    assert rerolled.response.attachments and "happy dog" in rerolled.response.embeds[0].description


async def test_a_button_on_a_result_past_its_retention_says_it_is_gone(simcord_env, bot_config):
    import sqlite3

    from bot.app import create_bot

    guild, channel, alice, _ = setup_guild(simcord_env)
    message = (await alice.slash(channel, "emoji", text="축하해")).response
    await simcord_env.bot.close()
    with sqlite3.connect(bot_config.data_dir / "results.sqlite3") as db:
        db.execute("UPDATE results SET created_at = 0")  # posted in 1970: pruned at the next start
    fresh = create_bot(bot_config)
    try:
        await simcord_env.restart_bot(fresh)
        gone = await alice.click(message, custom_id=custom_id(message, "reroll"))
    finally:
        fresh.worker.stop()
        fresh.worker.join(timeout=10)

    assert gone.response.ephemeral and "no longer have" in gone.response.content
    assert fresh.worker.requests_done == 0


# --------------------------------------------------------------------------------------- bad input


async def test_blank_text_gets_a_clear_error_and_no_generation(simcord_env):
    guild, channel, alice, _ = setup_guild(simcord_env)

    result = await alice.slash(channel, "emoji", text="   ")

    assert not deferred(simcord_env, result)
    assert result.response.ephemeral and "words" in result.response.content
    assert simcord_env.bot.worker.requests_done == 0


async def test_text_over_100_chars_is_rejected_by_discord(simcord_env):
    guild, channel, alice, _ = setup_guild(simcord_env)
    with pytest.raises(simcord.OptionError):
        await alice.slash(channel, "emoji", text="가" * 101)


@pytest.mark.parametrize(
    "text",
    [
        "축하\x00해\x07",  # control characters
        "z̷̢̛a̵̗͝l̶̰̈g̴̱̏ơ̶̩",  # zalgo
        "🎉🎉🥳",  # emoji only
        "가" * 100,  # the longest allowed
    ],
)
async def test_odd_text_that_has_something_to_draw_gets_an_image(simcord_env, text):
    guild, channel, alice, _ = setup_guild(simcord_env)

    result = await alice.slash(channel, "emoji", text=text)

    (big, _) = result.response.attachments
    assert (await image(big)).size == (320, 320)


@pytest.mark.parametrize("text", ["\u200b\u200b", "\x00\x07", " \u2060 "])  # zero-width, controls
async def test_odd_text_with_nothing_to_draw_gets_a_clear_message(simcord_env, text):
    guild, channel, alice, _ = setup_guild(simcord_env)

    result = await alice.slash(channel, "emoji", text=text)

    assert result.response.ephemeral and "Give me some words" in result.response.content
    assert not result.response.attachments and simcord_env.bot.worker.requests_done == 0


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"text": "축하해", "count": 99}, "`count` must be 1 to 4"),
        ({"text": "축하해", "count": 0}, "`count` must be 1 to 4"),
        ({"text": "축하해", "seed": -5}, "`seed` must be a whole number"),
        ({"text": "축하해", "seed": 2**40}, "`seed` must be a whole number"),
        ({"text": "가" * 500}, "100 characters"),
    ],
)
async def test_options_a_stale_client_sends_out_of_range_are_refused_before_drawing(
    simcord_env, options, expected
):
    guild, channel, alice, _ = setup_guild(simcord_env)

    result = await stale_slash(simcord_env, guild, channel, alice, "emoji", **options)

    assert result.response.ephemeral and expected in result.response.content
    assert simcord_env.bot.worker.requests_done == 0 and not deferred(simcord_env, result)


async def test_a_lone_surrogate_in_the_text_still_gets_an_image(simcord_env):
    guild, channel, alice, _ = setup_guild(simcord_env)

    result = await stale_slash(simcord_env, guild, channel, alice, "emoji", text="축하\ud800해")

    big, _ = result.response.attachments
    assert (await image(big)).info["prompt"] == "축하해"


# --------------------------------------------------------------------------------------- limits


@pytest.mark.bot_config(user_cooldown_s=30)
async def test_cooldown_per_user(simcord_env):
    guild, channel, alice, bob = setup_guild(simcord_env)
    assert (await alice.slash(channel, "emoji", text="하나")).response.attachments

    second = await alice.slash(channel, "emoji", text="둘")
    assert second.response.ephemeral and "30 s" in second.response.content
    assert not second.response.attachments
    assert (await bob.slash(channel, "emoji", text="셋")).response.attachments  # others are not held up

    await simcord_env.advance_time(31)
    assert (await alice.slash(channel, "emoji", text="넷")).response.attachments


@pytest.mark.bot_config(max_queue=2)
async def test_queue_full_says_busy_with_a_retry_hint(simcord_env, monkeypatch):
    guild, channel, alice, _ = setup_guild(simcord_env)
    worker = simcord_env.bot.worker
    gate = Gate(worker.base, monkeypatch)
    held = [worker.submit("바쁨", 1, i) for i in range(2)]

    result = await alice.slash(channel, "emoji", text="축하해")

    assert not deferred(simcord_env, result)
    assert result.response.ephemeral
    assert "busy" in result.response.content and "Try again in about" in result.response.content
    gate.event.set()
    for ticket in held:
        assert (await ticket.future).images


@pytest.mark.bot_config(max_batch=1)
async def test_waiting_user_sees_queue_position_then_the_image(simcord_env, monkeypatch):
    guild, channel, alice, _ = setup_guild(simcord_env)
    worker = simcord_env.bot.worker
    gate = Gate(worker.base, monkeypatch)
    held = [worker.submit("앞사람", 1, i) for i in range(2)]
    gate.open_after(0.5)

    result = await alice.slash(channel, "emoji", text="축하해")

    notes = [r.json.get("content") for r in simcord_env.http_requests if r.method == "PATCH" and r.json]
    assert any(note and "#3 in the queue" in note for note in notes), notes
    assert result.response.content == "" and result.response.attachments  # the note is replaced
    for ticket in held:
        await ticket.future


async def test_model_error_gets_a_message_and_the_bot_keeps_serving(simcord_env, monkeypatch):
    guild, channel, alice, _ = setup_guild(simcord_env)
    generator = simcord_env.bot.worker.base
    original = generator.draw
    calls = []

    def flaky(jobs):
        calls.append(jobs)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(jobs)

    monkeypatch.setattr(generator, "draw", flaky)

    failed = await alice.slash(channel, "emoji", text="축하해")
    assert "couldn't draw" in failed.response.content
    assert not failed.response.attachments and not failed.response.components

    ok = await alice.slash(channel, "emoji", text="축하해")
    assert (await image(ok.response.attachments[0])).size == (320, 320)


@pytest.mark.bot_config(reply_deadline_s=0.5)
async def test_generation_outliving_the_token_ends_with_an_apology(simcord_env, monkeypatch):
    guild, channel, alice, _ = setup_guild(simcord_env)
    gate = Gate(simcord_env.bot.worker.base, monkeypatch)
    gate.open_after(2.0)

    result = await alice.slash(channel, "emoji", text="축하해")

    assert "too long" in result.response.content and not result.response.attachments


async def test_shutdown_mid_queue_answers_the_waiting_user(simcord_env, monkeypatch):
    guild, channel, alice, _ = setup_guild(simcord_env)
    worker = simcord_env.bot.worker
    gate = Gate(worker.base, monkeypatch)
    gate.open_after(0.5, before=lambda: worker.stop("The bot is restarting."))

    result = await alice.slash(channel, "emoji", text="축하해")

    assert "restarting" in result.response.content and not result.response.attachments
    later = await alice.slash(channel, "emoji", text="축하해")
    assert later.response.ephemeral and "restarting" in later.response.content


async def test_close_stops_the_worker(simcord_env):
    guild, channel, alice, _ = setup_guild(simcord_env)
    await alice.slash(channel, "emoji", text="축하해")
    assert simcord_env.bot.worker.running

    await simcord_env.bot.close()

    assert not simcord_env.bot.worker.running


async def test_discord_refusing_the_image_still_gets_the_user_an_answer(simcord_env):
    guild, channel, alice, _ = setup_guild(simcord_env)
    simcord_env.inject_error("PATCH", "/webhooks/*/messages/@original", status=400, code=50035, times=1)

    result = await alice.slash(channel, "emoji", text="축하해")

    assert "would not take the image" in result.response.content and not result.response.attachments
