"""Lanes: one queue per key (a chat), each running its jobs in order, all keys at once up to a
limit. Updates of one chat (and the clock's work on its ticket) never overlap."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class Lanes:
    """One queue per chat; each runs its jobs in order, all chats at once (up to a limit)."""

    def __init__(self, concurrency: int = 16) -> None:
        self._queues: dict[Hashable, deque[Job]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(concurrency)

    def submit(self, key: Hashable, job: Job) -> None:
        self._queues.setdefault(key, deque()).append(job)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._drain(key))

    async def _drain(self, key: Hashable) -> None:
        queue = self._queues[key]
        try:
            while queue:
                job = queue.popleft()
                async with self._slots:
                    try:
                        await job()
                    except Exception:
                        logger.exception("A job in lane %s failed", key)
        finally:
            self._workers.pop(key, None)
            if not queue:
                self._queues.pop(key, None)
            else:  # submitted while we were finishing
                self._workers[key] = asyncio.create_task(self._drain(key))

    def waiting(self, key: Hashable) -> int:
        """How many jobs wait in the lane behind the one running."""
        return len(self._queues.get(key, ()))

    def has(self, key: Hashable) -> bool:
        """Whether the lane has work queued or running."""
        return key in self._workers

    @property
    def busy(self) -> int:
        return len(self._workers)

    async def idle(self) -> None:
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)
