"""``emoji-bot [--config PATH] [run | preview]`` / ``python -m bot``: read the config and run. Kept thin."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.config import DEFAULT_PATH, TOKEN_ENV, ConfigError, load_config

DEFAULT_PORT = 8765  # bot.preview.DEFAULT_PORT; repeated so --help does not import discord.py

NO_TOKEN = f"""\
emoji-bot: no Discord bot token.

Set it in the environment (the token is never logged):
    export {TOKEN_ENV}=your-bot-token      # Windows: set {TOKEN_ENV}=...
    emoji-bot
or put `token = "..."` in config.toml (see config.example.toml and docs/discord-setup.md).

To try the bot locally without Discord (a page on 127.0.0.1):
    emoji-bot preview
or just generation:
    emoji-gen 축하해 --out out/
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emoji-bot", description="Run the text2emoji Discord bot.")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_PATH, help="TOML config file (default: ./config.toml)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="connect to Discord and serve /emoji (the default)")
    preview = commands.add_parser(
        "preview", help="try the bot without Discord: a simulated server in a local web page (no token)"
    )
    preview.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"loopback port (default: {DEFAULT_PORT}; 0: any free)",
    )
    # SUPPRESS: `emoji-bot --config X preview` keeps X unless `preview --config Y` is given.
    preview.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML config file")
    return parser


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0–65535, not {port}")
    return port


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"emoji-bot: bad config: {exc}", file=sys.stderr)
        return 2
    if config.checkpoint is not None and not config.checkpoint.is_file():
        print(f"emoji-bot: checkpoint not found: {config.checkpoint}", file=sys.stderr)
        return 2
    if args.command == "preview":
        from bot.preview import run_preview  # imported late, like bot.app

        return run_preview(config, port=args.port)
    if config.token is None:
        print(NO_TOKEN, file=sys.stderr, end="")
        return 1
    from bot.app import run  # imported late: a missing token should not need discord.py to start

    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
