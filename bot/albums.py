"""Albums arrive as one update per photo; act once the album has gone quiet."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

logger = logging.getLogger(__name__)

Action = Callable[[], Awaitable[None]]
Enqueue = Callable[[Hashable, Action], None]


class Debouncer:
    """Runs an action once no new call for its key came within the window. The action is
    handed to `enqueue` with its chat, so it runs in that chat's lane, in order with the chat's
    updates. What the action needs is in the database already: a restart loses only the wait."""

    def __init__(self, window: float, enqueue: Enqueue | None = None) -> None:
        self.window = window
        self.enqueue = enqueue
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}

    def touch(self, key: Hashable, chat: Hashable, action: Action) -> None:
        old = self._tasks.pop(key, None)
        if old is not None:
            old.cancel()
        self._tasks[key] = asyncio.create_task(self._later(key, chat, action))

    async def _later(self, key: Hashable, chat: Hashable, action: Action) -> None:
        await asyncio.sleep(self.window)
        self._tasks.pop(key, None)
        if self.enqueue is not None:
            self.enqueue(chat, action)
            return
        try:
            await action()
        except Exception:
            logger.exception("Album action for %s failed", key)

    @property
    def pending(self) -> int:
        return len(self._tasks)
