"""Every way a command line can be wrong ends in one line on stderr and a non-zero exit, never a traceback.

The commands run for real, in a subprocess, the way a user types them. None of them needs a trained
model: each error is found before the model would load. The bot's login goes to a server on 127.0.0.1
(or to a closed port there) instead of discord.com, so nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import bot.__main__
import model.cli
import model.sample
from tests.support import ROOT

TIMEOUT_S = 60  # importing torch or discord.py on a busy CPU


def one_error_line(proc: subprocess.CompletedProcess, prefix: str) -> str:
    """The single stderr line of a failed command (asserting there is exactly one, and no traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "weights_only" not in proc.stderr, proc.stderr  # PyTorch's unsafe advice never reaches users
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


# ----------------------------------------------------------------------------------------------- emoji-gen


def emoji_gen(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "model.sample", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def make_inputs(folder: Path) -> None:
    """The wrong files a user might hand over: a plain file, binary data, text, a pickle with objects."""
    (folder / "a-file").write_text("not a folder\n")
    (folder / "a-folder").mkdir()
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01")
    (folder / "notes.pt").write_text("hello\n")
    torch.save({"format_version": 1, "path": Path("x")}, folder / "objects.pt")  # a class: never loaded


MISSING = "no-such-model.pt"  # after an input error the model would load next; it never gets there

GEN_ERRORS = {
    "--out names a file": (["hi", "--out", "a-file", "--checkpoint", MISSING], "--out a-file is a file"),
    "--out cannot be created": (["hi", "--out", "a-file/sub", "--checkpoint", MISSING], "cannot create"),
    "--prompts-file missing": (["--prompts-file", "nope.txt"], "--prompts-file nope.txt: no such file"),
    "--prompts-file binary": (["--prompts-file", "photo.jpg"], "is not UTF-8 text (byte 0xff at offset 0)"),
    "--prompts-file a folder": (["--prompts-file", "a-folder"], "a-folder is a folder"),
    "--checkpoint a folder": (["hi", "--checkpoint", "a-folder"], "a-folder is a folder"),
    "--checkpoint a text file": (
        ["hi", "--checkpoint", "notes.pt"],
        "notes.pt is not a readable text2emoji checkpoint (not a PyTorch file",
    ),
    "--checkpoint with objects": (["hi", "--checkpoint", "objects.pt"], "holds Python objects"),
    "--count over the cap": (["hi", "--count", "1000"], f"--count must be 1 to {model.sample.MAX_COUNT}"),
    "--count zero": (["hi", "--count", "0"], "--count must be 1 to"),
}


@pytest.mark.parametrize("args, expected", GEN_ERRORS.values(), ids=GEN_ERRORS.keys())
def test_emoji_gen_input_errors_are_one_line_and_exit_2(tmp_path, args, expected):
    make_inputs(tmp_path)

    proc = emoji_gen(tmp_path, *args)

    assert proc.returncode == 2
    assert expected in one_error_line(proc, "emoji-gen: error: ")
    assert not list(tmp_path.glob("out*/*.png"))


def test_emoji_gen_count_cap_is_in_the_help_and_says_what_to_do(tmp_path):
    assert f"1 to {model.sample.MAX_COUNT}" in emoji_gen(tmp_path, "--help").stdout
    line = one_error_line(emoji_gen(tmp_path, "hi", "--count", "17"), "emoji-gen: error: ")
    assert "another --seed" in line


# ----------------------------------------------------------------------------------------------- --help


def all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


@pytest.mark.parametrize(
    "parser", [model.sample.build_parser(), model.cli.build_parser(), bot.__main__.build_parser()]
)
def test_every_option_says_what_it_does_and_its_default(parser):
    for each in all_parsers(parser):
        formatter = each._get_formatter()
        for action in each._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            shown = formatter._get_help_string(action) or ""
            assert action.help, f"{each.prog} {action.dest}: no help text"
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert "default" in shown, f"{each.prog} {action.option_strings[0]}: default not shown"


def test_emoji_bot_run_help_explains_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--help"], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0
    assert "DISCORD_TOKEN" in proc.stdout and "Ctrl-C" in proc.stdout and "--config" in proc.stdout


# ----------------------------------------------------------------------------------------------- emoji-bot

# The real launcher, with discord.py's API address pointed at 127.0.0.1 (the only change).
BOT_AT = """
import sys
import discord.http
discord.http.Route.BASE = sys.argv[1]
from bot.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


def emoji_bot_at(api: str, tmp_path: Path) -> subprocess.CompletedProcess:
    config = tmp_path / "config.toml"
    config.write_text('log_level = "WARNING"\n', encoding="utf-8")  # the bot's own INFO lines aside
    env = dict(os.environ, DISCORD_TOKEN="not-a-real-token")
    return subprocess.run(
        [sys.executable, "-c", BOT_AT, api, "--config", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


class Unauthorized(BaseHTTPRequestHandler):
    """Discord's answer to a wrong token: 401 on every request."""

    def do_GET(self) -> None:
        body = json.dumps({"message": "401: Unauthorized", "code": 0}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def discord_rejecting_tokens() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/v10"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_invalid_token_says_where_to_get_one(tmp_path, discord_rejecting_tokens):
    proc = emoji_bot_at(discord_rejecting_tokens, tmp_path)

    assert proc.returncode == 2
    line = one_error_line(proc, "emoji-bot: ")
    assert "rejected the bot token" in line and "https://discord.com/developers/applications" in line
    assert "DISCORD_TOKEN" in line
    assert "not-a-real-token" not in proc.stderr


def test_no_network_says_what_it_tried(tmp_path):
    port = closed_port()

    proc = emoji_bot_at(f"http://127.0.0.1:{port}/api/v10", tmp_path)

    assert proc.returncode == 1
    line = one_error_line(proc, "emoji-bot: ")
    assert f"cannot reach Discord at 127.0.0.1:{port} (Connection refused)" in line


def test_a_taken_preview_port_fails_at_once_before_the_model_loads(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot",
                "preview",
                "--port",
                str(port),
                "--config",
                str(tmp_path / "x.toml"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    assert proc.returncode == 2 and "http://" not in proc.stdout
    line = one_error_line(proc, "emoji-bot: could not start the preview: ")
    assert f"could not bind port {port}" in line and "--port" in line


def test_a_folder_as_the_bots_checkpoint_is_named_a_folder(tmp_path):
    (tmp_path / "models").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'checkpoint = "{tmp_path / "models"}"\n', encoding="utf-8")

    proc = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config)],
        cwd=ROOT,
        env=dict(os.environ, DISCORD_TOKEN="not-a-real-token"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )

    assert proc.returncode == 2
    assert "models is a folder" in one_error_line(proc, "emoji-bot: checkpoint ")
