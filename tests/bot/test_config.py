"""Config: offline defaults, validation with the key's name in the message, TOML + DISCORD_TOKEN."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.config import SECTIONS, Config, ConfigError, load_config
from tests.support import ROOT


def test_defaults_work_offline():
    config = Config()
    assert config.data_dir == Path("./data")
    assert config.checkpoint is None and config.device == "auto" and config.token is None
    assert config.max_queue >= config.max_batch >= 1
    assert config.dev_guild_id is None and config.finetune_steps is None


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().max_queue = 3  # type: ignore[misc]


def test_token_never_shows_in_repr():
    config = Config(token="secret-token-value")
    assert "secret-token-value" not in repr(config) and "secret-token-value" not in str(config)


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"max_queue": 0}, "max_queue"),
        ({"max_batch": "8"}, "max_batch"),
        ({"batch_wait_ms": -1}, "batch_wait_ms"),
        ({"user_cooldown_s": -0.5}, "user_cooldown_s"),
        ({"device": "tpu"}, "device"),
        ({"dev_guild_id": True}, "dev_guild_id"),
        ({"finetune_steps": 0}, "finetune_steps"),
        ({"reply_deadline_s": 901}, "reply_deadline_s"),
        ({"log_level": "LOUD"}, "log_level"),
        ({"data_dir": 3}, "data_dir"),
    ],
)
def test_bad_values_name_the_key(fields, key):
    with pytest.raises(ConfigError, match=key):
        Config(**fields)


def test_paths_and_numbers_are_normalised():
    config = Config(data_dir="d", checkpoint="c.pt", user_cooldown_s=3, log_level="debug")
    assert config.data_dir == Path("d") and config.checkpoint == Path("c.pt")
    assert isinstance(config.user_cooldown_s, float) and config.log_level == "DEBUG"
    assert Config(checkpoint="").checkpoint is None


def test_missing_file_gives_defaults(tmp_path):
    assert load_config(tmp_path / "nope.toml", env={}) == Config()


def test_toml_values_and_relative_paths(tmp_path):
    path = tmp_path / "conf" / "config.toml"
    path.parent.mkdir()
    path.write_text(
        'data_dir = "state"\ncheckpoint = "models/my.pt"\nmax_queue = 10\nmax_batch = 2\n'
        "user_cooldown_s = 1.5\ndev_guild_id = 123456789012345678\n",
        encoding="utf-8",
    )
    config = load_config(path, env={})
    assert config.data_dir == path.parent / "state"
    assert config.checkpoint == path.parent / "models" / "my.pt"
    assert (config.max_queue, config.max_batch, config.user_cooldown_s) == (10, 2, 1.5)
    assert config.dev_guild_id == 123456789012345678


def test_environment_token_wins_over_the_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('token = "from-file"\n', encoding="utf-8")
    assert load_config(path, env={}).token == "from-file"
    assert load_config(path, env={"DISCORD_TOKEN": "from-env"}).token == "from-env"
    assert load_config(path, env={"DISCORD_TOKEN": "  "}).token == "from-file"


def test_unknown_keys_and_bad_toml_are_reported(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("max_qeue = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="max_qeue"):
        load_config(path, env={})
    path.write_text("max_queue = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env={})
    path.write_text('max_queue = "lots"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="max_queue"):
        load_config(path, env={})


def test_example_config_is_valid_and_complete():
    example = ROOT / "config.example.toml"
    text = example.read_text(encoding="utf-8")
    for field in dataclasses.fields(Config):
        if field.name in SECTIONS:  # a [section] table: its header and each of its keys
            assert f"[{field.name}]" in text, f"[{field.name}] missing from config.example.toml"
            for key in dataclasses.fields(SECTIONS[field.name]):
                assert f"{key.name} =" in text, f"[{field.name}] {key.name} missing from config.example.toml"
            continue
        assert f"{field.name} =" in text, f"{field.name} missing from config.example.toml"
    assert load_config(example, env={}) is not None  # commented-out defaults parse
