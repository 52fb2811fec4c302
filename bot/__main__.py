"""``emoji-bot [--config PATH]`` / ``python -m bot``: read the config and run. Kept thin on purpose."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.config import DEFAULT_PATH, TOKEN_ENV, ConfigError, load_config

NO_TOKEN = f"""\
emoji-bot: no Discord bot token.

Set it in the environment (the token is never logged):
    export {TOKEN_ENV}=your-bot-token      # Windows: set {TOKEN_ENV}=...
    emoji-bot
or put `token = "..."` in config.toml (see config.example.toml and docs/discord-setup.md).

To try generation locally without Discord:
    emoji-gen 축하해 --out out/
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emoji-bot", description="Run the text2emoji Discord bot.")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_PATH, help="TOML config file (default: ./config.toml)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="connect to Discord and serve /emoji (the default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"emoji-bot: bad config: {exc}", file=sys.stderr)
        return 2
    if config.token is None:
        print(NO_TOKEN, file=sys.stderr, end="")
        return 1
    if config.checkpoint is not None and not config.checkpoint.is_file():
        print(f"emoji-bot: checkpoint not found: {config.checkpoint}", file=sys.stderr)
        return 2
    from bot.app import run  # imported late: a missing token should not need discord.py to start

    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
