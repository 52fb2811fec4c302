"""``emoji-bot preview`` without a browser: the CLI, loopback-only serving, clean shutdown, the world.

``PreviewProcess`` (also used by test_preview_browser.py) runs the real command in a subprocess.
"""

from __future__ import annotations

import http.client
import io
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

import bot.preview
from bot.__main__ import build_parser, main
from bot.config import Config
from bot.preview import EmojiShelf, build_world, preview_config, server_emoji_command
from tests.support import BASE_CHECKPOINT, ROOT

START_TIMEOUT_S = 90.0  # importing torch and loading the model, on a possibly busy CPU
STOP_TIMEOUT_S = 20.0
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/#\S+")

needs_model = pytest.mark.skipif(
    not BASE_CHECKPOINT.exists(), reason="checkpoints/base.pt is not trained yet"
)


class PreviewProcess:
    """``python -m bot preview --port 0`` in a subprocess; ``url`` once it has printed it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.stderr_path = workdir / "preview.log"
        self.url = ""
        self.port = 0

    def __enter__(self) -> PreviewProcess:
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot",
                "preview",
                "--port",
                "0",
                "--config",
                str(self.workdir / "none.toml"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        try:
            while not self.url:
                line = lines.get(timeout=START_TIMEOUT_S)
                if match := URL.search(line):
                    self.url, self.port = match.group(0), int(match.group(1))
        except queue.Empty:
            self.__exit__()
            raise AssertionError(f"no URL printed; the log says:\n{self.log()[-3000:]}") from None
        return self

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Send ``signum`` and wait; a preview that hangs is killed and fails the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"preview ignored signal {signum}; log:\n{self.log()[-3000:]}") from None

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def get(port: int, path: str, host: str, address: str = "127.0.0.1") -> tuple[int, str]:
    connection = http.client.HTTPConnection(address, port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses (hex, as the kernel prints them) listening on ``port`` (Linux)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


# ------------------------------------------------------------------------------- the command line


def test_preview_subcommand_takes_port_and_config():
    parser = build_parser()
    args = parser.parse_args(["preview", "--port", "0", "--config", "mine.toml"])
    assert (args.command, args.port, args.config) == ("preview", 0, Path("mine.toml"))
    assert parser.parse_args(["--config", "outer.toml", "preview"]).config == Path("outer.toml")
    assert parser.parse_args(["preview"]).port == bot.preview.DEFAULT_PORT
    with pytest.raises(SystemExit):
        parser.parse_args(["preview", "--port", "70000"])


def test_preview_needs_no_token(tmp_path, monkeypatch):
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    calls = []
    monkeypatch.setattr(bot.preview, "run_preview", lambda config, port: calls.append((config, port)) or 0)

    assert main(["preview", "--port", "9999", "--config", str(tmp_path / "none.toml")]) == 0

    ((config, port),) = calls
    assert port == 9999 and config.token is None


def test_preview_config_sandboxes_the_run(tmp_path):
    config = Config(data_dir=tmp_path / "real", dev_guild_id=123, user_cooldown_s=5.0, token="secret")

    sandboxed = preview_config(config, tmp_path / "tmp")

    assert sandboxed.data_dir == tmp_path / "tmp"  # server training writes nowhere real
    assert sandboxed.dev_guild_id is None  # that guild does not exist in the simulation
    assert sandboxed.user_cooldown_s == 0  # the simulated clock never lets a cooldown expire
    assert sandboxed.token is None
    assert sandboxed.max_queue == config.max_queue


# ------------------------------------------------------------------------------- the real process


@needs_model
def test_serves_on_loopback_only_refuses_other_hosts_and_stops_on_sigterm(tmp_path):
    with PreviewProcess(tmp_path) as preview:
        port = preview.port

        status, body = get(port, "/", host=f"127.0.0.1:{port}")
        assert status == 200 and "SimCord" in body
        assert get(port, "/", host=f"evil.example:{port}")[0] == 403  # DNS rebinding
        assert get(port, "/", host="evil.example")[0] == 403
        assert get(port, "/api/state", host=f"127.0.0.1:{port}")[0] == 401  # no session key
        assert listening_addresses(port) <= {"0100007F"}  # 127.0.0.1, not 0.0.0.0 or ::
        with pytest.raises(OSError):  # bound to 0.0.0.0 it would answer on every loopback address
            socket.create_connection(("127.0.0.2", port), timeout=5).close()

        assert preview.stop(signal.SIGTERM) == 0
        log = preview.log()
    assert "Preview stopped" in log and "Traceback" not in log
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


@needs_model
def test_ctrl_c_stops_the_bot_cleanly(tmp_path):
    with PreviewProcess(tmp_path) as preview:
        assert preview.stop(signal.SIGINT) == 0
        log = preview.log()
    assert "Stopping the preview (signal)" in log and "Preview stopped" in log
    assert "Traceback" not in log and "Task was destroyed" not in log


@needs_model
def test_the_log_names_the_bot_and_its_server_without_discord_py_noise(tmp_path):
    with PreviewProcess(tmp_path) as preview:
        assert preview.stop(signal.SIGINT) == 0
        log = preview.log()
    assert f"Ready as {bot.preview.BOT_NAME} in 1 guild(s)" in log  # the page's one server, our name
    for noise in ("PyNaCl", "davey", "Guilds intent"):  # voice we never use; SimCord's intent-less probe
        assert noise not in log


# ------------------------------------------------------------------------------- the simulated server


@pytest.fixture
def simcord_bot(simcord_bot):
    """The conftest bot plus the preview's own ``/server-emoji`` (registered before it syncs)."""
    simcord_bot.preview_shelf = EmojiShelf()
    simcord_bot.tree.add_command(server_emoji_command(simcord_bot.preview_shelf))
    return simcord_bot


def button_id(message, part: str) -> str:
    (found,) = [
        c["custom_id"] for row in message.components for c in row["components"] if part in c["custom_id"]
    ]
    return found


@pytest.mark.asyncio
@pytest.mark.simcord(settle_timeout=30)
async def test_world_admin_can_add_an_emoji_and_server_emoji_lists_it(simcord_env, simcord_bot):
    simcord_bot.preview_shelf.env = simcord_env
    world = build_world(simcord_env)

    empty = await world.member.slash(world.channel, "server-emoji")
    assert "has 0/" in empty.response.content

    made = await world.member.slash(world.channel, "emoji", text="축하해", seed=7)
    message = made.response
    refused = await world.member.click(message, custom_id=button_id(message, "save-emoji"))
    assert "You need the **Create Expressions** permission" in refused.response.content
    added = await world.admin.click(message, custom_id=button_id(message, "save-emoji"))
    assert "Added" in added.followups[-1].content  # the click is deferred; the outcome follows privately

    listing = await world.member.slash(world.channel, "server-emoji")

    assert "has 1/" in listing.response.content and "`:chukhahae:`" in listing.response.content
    (sheet,) = listing.response.attachments
    image = Image.open(io.BytesIO(await sheet.read()))
    assert image.size == (136, 136) and image.mode == "RGBA"
    assert image.getchannel("A").getbbox() is not None  # the emoji itself, not an empty canvas
    assert simcord_bot.get_channel(world.channel.id).name == bot.preview.CHANNEL_NAME
