"""Handling one stored message (a Telegram update, a WeChat message) until it is done.

A fault that passes (the database locked, the messenger away) leaves the message where it is
and it is handled again after a pause, doubling, for as long as the fault lasts. A fault that
will not pass (a bug) is tried a few times, then the message is set aside so that its chat
moves on; whoever sets it aside tells staff. Stopping leaves the message stored, for the next
start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.channels.base import Passing
from storage.db import passing as database_passing

logger = logging.getLogger(__name__)


def passing(exc: BaseException) -> bool:
    """The one test of a fault that passes: a messenger away (its adapter says so by raising
    `Passing`) or the database locked, deadlocked or gone a moment (`storage.db.passing`).
    An adapter that calls its messenger itself adds what its library raises."""
    return isinstance(exc, Passing) or database_passing(exc)


RETRY_FIRST = 0.5  # a message that failed for a passing reason is handled again after this,
RETRY_MOST = 30.0  # doubling up to this, for as long as the fault lasts
TRIES = 3  # a message failing for a reason that will not pass is set aside after this many


async def until_done(
    attempt: Callable[[], Awaitable[None]],
    *,
    what: str,
    passing: Callable[[BaseException], bool],
    set_aside: Callable[[Exception], Awaitable[None]],
    stopped: asyncio.Event,
) -> bool:
    """Run `attempt` (one unit of work that handles the message and marks it handled) until it
    succeeds. False: it was set aside, or the desk is stopping (the message stays stored)."""
    backoff, failures = RETRY_FIRST, 0
    while True:
        try:
            await attempt()
            return True
        except Exception as exc:
            if stopped.is_set():
                return False
            if passing(exc):
                logger.warning("%s waits (%r): again in %.1fs", what, exc, backoff)
            else:
                failures += 1
                logger.exception("%s failed (%s of %s)", what, failures, TRIES)
                if failures >= TRIES:
                    await set_aside(exc)
                    return False
            try:
                await asyncio.wait_for(stopped.wait(), timeout=backoff)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, RETRY_MOST)


ORPHAN_AFTER = timedelta(seconds=10)  # stored this long ago and not handled: left by its instance
SWEEP_EVERY = 5.0


async def take_over(
    stopped: asyncio.Event, look: Callable[[], Awaitable[None]], what: str
) -> None:
    """Several instances: every `SWEEP_EVERY` seconds until `stopped`, `look()` hands on what
    was stored more than `ORPHAN_AFTER` ago and is still not handled (the instance that stored
    it died, or stopped before it got to it); one that another instance handles meanwhile is
    undone by the handled mark, which only one can set."""
    while not stopped.is_set():
        try:
            await asyncio.wait_for(stopped.wait(), timeout=SWEEP_EVERY)
            return
        except TimeoutError:
            pass
        try:
            await look()
        except Exception as exc:
            logger.warning("Looking for %s left unhandled failed: %r", what, exc)
