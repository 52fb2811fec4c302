"""Sharding and what several bot processes share: the config's shard keys and [backend] section, the
sharded bot in SimCord (all shards in one process; one process of a cluster) and two processes writing
the same SQLite store at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest
from discord.ext import commands

from bot.app import create_bot
from bot.config import BackendConfig, Config, ConfigError, load_config
from bot.results import DB_NAME
from tests.support import ROOT


def test_shard_keys_choose_the_autosharded_bot_and_reach_discord_py():
    plain = create_bot(Config())
    assert not isinstance(plain, commands.AutoShardedBot) and plain.shard_count is None

    everything = create_bot(Config(shard_count=4))
    assert isinstance(everything, commands.AutoShardedBot)
    assert (everything.shard_count, everything.shard_ids) == (4, None)

    member = create_bot(Config(shard_count=4, shard_ids=[3, 1]))
    assert (member.shard_count, member.shard_ids) == (4, [3, 1])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"shard_ids": [0]}, "needs shard_count"),
        ({"shard_count": 0}, "at least 1"),
        ({"shard_count": 2, "shard_ids": [2]}, "not below shard_count"),
        ({"shard_count": 2, "shard_ids": [1, 1]}, "distinct"),
        ({"shard_count": 2, "shard_ids": []}, "distinct and not empty"),
        ({"shard_count": 2, "shard_ids": "0"}, "list of shard numbers"),
    ],
)
def test_bad_shard_settings_name_the_key(fields, message):
    with pytest.raises(ConfigError, match=message):
        Config(**fields)


def test_backend_section_is_read_and_checked(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        'shard_count = 8\nshard_ids = [4, 5, 6, 7]\n[backend]\nkind = "arq"\n'
        'redis_url = "redis://10.0.0.5:6379/1"\njob_timeout_s = 12\n',
        encoding="utf-8",
    )
    config = load_config(path, env={})
    assert (config.shard_count, config.shard_ids) == (8, (4, 5, 6, 7))
    expected = BackendConfig(kind="arq", redis_url="redis://10.0.0.5:6379/1", job_timeout_s=12.0)
    assert config.backend == expected
    assert Config().backend.kind == "thread"  # the default: the in-process worker

    for body, message in [
        ('[backend]\nkind = "ray"\n', "backend.kind"),
        ('[backend]\nredis_url = "http://x"\n', "redis_url"),
        ("[backend]\nreplica_jobs = 0\n", "replica_jobs"),
        ("[backend]\nworkers = 2\n", r"unknown option\(s\) in \[backend\]: workers"),
        ('backend = "arq"\n', r"\[backend\] section"),
    ]:
        path.write_text(body, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            load_config(path, env={})


@pytest.mark.asyncio
@pytest.mark.simcord(settle_timeout=30)
@pytest.mark.bot_config(shard_count=2)
async def test_one_process_runs_every_shard_and_serves_guilds_on_each(simcord_env, simcord_bot):
    guilds = [simcord_env.create_guild(f"shard {n}", shard_id=n) for n in (0, 1)]
    assert sorted(simcord_bot.shards) == [0, 1]
    for n, guild in enumerate(guilds):
        assert simcord_bot.get_guild(guild.id).shard_id == n
        channel = guild.create_text_channel("general")
        member = guild.add_member(simcord_env.create_user(f"user{n}"))
        result = await member.slash(channel, "emoji", text="축하해", seed=n)
        assert result.response.attachments


@pytest.mark.asyncio
@pytest.mark.simcord(settle_timeout=30)
@pytest.mark.bot_config(shard_count=2, shard_ids=[1])
async def test_a_cluster_process_sees_only_the_guilds_of_its_shards(simcord_env, simcord_bot):
    mine = simcord_env.create_guild("mine", shard_id=1)
    other = simcord_env.create_guild("another process's", shard_id=0)
    assert sorted(simcord_bot.shards) == [1]
    assert simcord_bot.get_guild(other.id) is None  # its events go to the process running shard 0
    channel = mine.create_text_channel("general")
    member = mine.add_member(simcord_env.create_user("alice"))
    result = await member.slash(channel, "emoji", text="고양이")
    assert result.response.attachments


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bot.results import ResultStore

    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()  # both open and write together, as shard processes starting at once
    store = ResultStore(Path(sys.argv[1])).open()
    for i in range(int(sys.argv[3])):
        store.add(guild_id=int(sys.argv[2]), requester_id=i, text="동시에", seed=i, count=1,
                  private=False, model_name="m")
    store.close()
    """
)


def test_two_processes_write_one_sqlite_store_at_once(tmp_path):
    """Shard processes on one machine share data_dir: WAL and the busy timeout let them open and write the
    same file at once (without the timeout this fails with "database is locked", at open or at a write)."""
    rows = 2000
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(guild), str(rows)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for guild in (1, 2)
    ]
    for writer in writers:
        assert writer.stdout.readline() == "ready\n", writer.stderr.read()
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        _, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors  # no "database is locked"

    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        counts = dict(db.execute("SELECT guild_id, COUNT(*) FROM results GROUP BY guild_id").fetchall())
        (ids,) = db.execute("SELECT COUNT(DISTINCT id) FROM results").fetchone()
    assert counts == {1: rows, 2: rows} and ids == 2 * rows
