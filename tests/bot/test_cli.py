"""The emoji-bot launcher: without a token it explains how to set one and exits non-zero."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.__main__ import build_parser, main
from tests.support import ROOT


def test_no_token_exits_with_instructions(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main(["--config", str(tmp_path / "missing.toml")]) == 1
    err = capsys.readouterr().err
    assert "DISCORD_TOKEN" in err and "emoji-gen 축하해 --out out/" in err


def test_bad_config_exits_with_the_key(tmp_path, monkeypatch, capsys):
    path = tmp_path / "config.toml"
    path.write_text("max_batch = 0\n", encoding="utf-8")
    assert main(["--config", str(path)]) == 2
    assert "max_batch" in capsys.readouterr().err


def test_parser_leaves_room_for_subcommands():
    parser = build_parser()
    assert parser.parse_args([]).command is None
    assert parser.parse_args(["run"]).command == "run"
    with pytest.raises(SystemExit):
        parser.parse_args(["no-such-command"])


def test_python_dash_m_bot_runs_the_same_launcher(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(tmp_path / "none.toml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=60,
    )
    assert proc.returncode == 1 and "DISCORD_TOKEN" in proc.stderr


def test_missing_checkpoint_is_reported_before_connecting(tmp_path, monkeypatch, capsys):
    path = tmp_path / "config.toml"
    path.write_text('checkpoint = "nope.pt"\n', encoding="utf-8")
    monkeypatch.setenv("DISCORD_TOKEN", "x")
    assert main(["--config", str(path)]) == 2
    assert "nope.pt" in capsys.readouterr().err
