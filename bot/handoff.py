"""Handing results from the bot's threads (generation worker, training supervisor) to the event loop.

Futures are not thread-safe: a thread resolves one only through ``loop.call_soon_threadsafe``. Once the
bot has shut down its loop is closed and there is nobody left to tell, so the result is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def to_loop(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Run ``callback(*args)`` on ``loop`` soon; a closed loop (bot gone) drops it."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        log.debug("Event loop closed; dropping %s", getattr(callback, "__name__", callback))


def set_result(future: asyncio.Future[Any], result: Any) -> None:
    """Resolve ``future`` unless it was cancelled or failed meanwhile (call on its loop)."""
    if not future.done():
        future.set_result(result)


def set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    """Fail ``future`` unless it is already done (call on its loop)."""
    if not future.done():
        future.set_exception(error)
