"""``emoji-bot [--config PATH] [run | preview | replica]`` / ``python -m bot``: read the config, run. Thin."""

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
    parser = argparse.ArgumentParser(
        prog="emoji-bot",
        description="Run the text2emoji Discord bot (`run`, the default) or try it locally (`preview`).",
        epilog=f"The bot token comes from ${TOKEN_ENV} or `token` in the config (docs/discord-setup.md).",
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_PATH, help=f"TOML config file (default: ./{DEFAULT_PATH})"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="connect to Discord and serve /emoji (the default)",
        description=(
            f"Log in to Discord with the bot token (${TOKEN_ENV}, or `token` in the config file), sync the "
            "slash commands and serve /emoji until Ctrl-C. Settings (checkpoint, device, queue, log level) "
            "come from the config file; see config.example.toml."
        ),
    )
    preview = commands.add_parser(
        "preview",
        help="try the bot without Discord: a simulated server in a local web page (no token)",
        description=(
            "Run the real bot in a simulated Discord server, served as a web page on 127.0.0.1: "
            "no token, no Discord account. The printed link carries the session key. Ctrl-C stops."
        ),
    )
    preview.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"loopback port of the page (default: {DEFAULT_PORT}; 0: any free port)",
    )
    replica = commands.add_parser(
        "replica",
        help='serve generation jobs for bots whose config says [backend] kind = "arq" (docs/scaling.md)',
        description=(
            "Load the model and draw the jobs queued on the config's [backend] Redis queue, batched, "
            "until SIGTERM or Ctrl-C. Run one per GPU or a few per CPU machine; needs the distributed extra."
        ),
    )
    # SUPPRESS: `emoji-bot --config X run` keeps X unless `run --config Y` is given.
    for sub in (run, preview, replica):
        sub.add_argument(
            "--config",
            type=Path,
            default=argparse.SUPPRESS,
            help=f"TOML config file (default: the --config before the command, else ./{DEFAULT_PATH})",
        )
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
        if config.checkpoint.is_dir():
            print(
                f"emoji-bot: checkpoint {config.checkpoint} is a folder; give the .pt file", file=sys.stderr
            )
        else:
            print(f"emoji-bot: checkpoint not found: {config.checkpoint}", file=sys.stderr)
        return 2
    if args.command == "replica":
        try:
            from bot.replica import run_replica  # needs arq: the distributed extra
        except ImportError as exc:
            print(
                f"emoji-bot: replica needs the distributed extra ({exc}): "
                "pip install 'text2emoji[distributed]'",
                file=sys.stderr,
            )
            return 2
        return run_replica(config)
    if args.command == "preview":
        from bot.preview import run_preview  # imported late, like bot.app

        return run_preview(config, port=args.port)
    if config.token is None:
        print(NO_TOKEN, file=sys.stderr, end="")
        return 1
    from bot.app import run  # imported late: a missing token should not need discord.py to start

    return run(config)


if __name__ == "__main__":
    sys.exit(main())
