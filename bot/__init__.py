"""text2emoji's Discord bot: ``/emoji`` served from a generation worker thread.

from bot.app import create_bot
from bot.config import Config, load_config
"""
