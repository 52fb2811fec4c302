"""Start-up: cogs loaded, commands synced (globally or to the dev guild), the model really loaded."""

from __future__ import annotations

import pytest
import simcord

from bot.app import create_bot
from bot.config import Config
from tests.support import BASE_CHECKPOINT

pytestmark = [pytest.mark.asyncio, pytest.mark.simcord(settle_timeout=30)]

DEV_GUILD = 222222222222222222


async def test_emoji_is_synced_globally_with_its_options(simcord_env):
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("general")
    alice = guild.add_member(simcord_env.create_user("alice"))
    assert "emoji" in alice.available_commands(channel)
    (sync,) = [r for r in simcord_env.http_requests if r.method == "PUT" and r.path.endswith("/commands")]
    (command,) = [c for c in sync.json if c["name"] == "emoji"]  # what Discord was told
    options = {o["name"]: o for o in command["options"]}
    assert list(options) == ["text", "count", "seed", "private"]
    assert (options["text"]["min_length"], options["text"]["max_length"]) == (1, 100)
    assert (options["count"]["min_value"], options["count"]["max_value"]) == (1, 4)
    assert options["text"]["required"] and not options["count"].get("required")


@pytest.mark.bot_config(dev_guild_id=DEV_GUILD)
async def test_dev_guild_gets_the_commands_and_other_guilds_do_not(simcord_env):
    dev = simcord_env.create_guild("dev", id=DEV_GUILD)
    other = simcord_env.create_guild("other")
    dev_channel, other_channel = dev.create_text_channel("dev"), other.create_text_channel("general")
    alice = dev.add_member(simcord_env.create_user("alice"))
    bob = other.add_member(simcord_env.create_user("bob"))

    result = await alice.slash(dev_channel, "emoji", text="축하해")
    assert result.response.attachments
    with pytest.raises(simcord.SetupError):
        await bob.slash(other_channel, "emoji", text="축하해")


@pytest.mark.skipif(not BASE_CHECKPOINT.exists(), reason="checkpoints/base.pt is not trained yet")
async def test_bot_loads_the_configured_checkpoint_itself(tmp_path):
    bot = create_bot(Config(data_dir=tmp_path, checkpoint=BASE_CHECKPOINT, device="cpu", user_cooldown_s=0))
    try:
        async with simcord.run(bot, settle_timeout=30) as env:
            guild = env.create_guild()
            channel = guild.create_text_channel("general")
            alice = guild.add_member(env.create_user("alice"))
            result = await alice.slash(channel, "emoji", text="고양이")
            assert result.response.attachments[0].size > 0
            assert bot.worker.base.device == "cpu"
    finally:
        bot.worker.stop()
        bot.worker.join(10)
