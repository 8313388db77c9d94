"""Telegram's flood limits, as the stand-in enforces them when asked to (off by default).

Telegram publishes them only roughly: about 30 messages a second in all, about one a second to
one private chat with short bursts allowed, and 20 a minute to one group; past them it answers
429 with `retry_after`. Here: a 1-second window of 30 overall, a token bucket per private chat
(one a second, bursts of `private_burst`), and a 60-second window of 20 per group. Edits,
copies, forwards, albums (each photo) and new forum topics count like messages.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

COUNTED_PREFIXES = ("send", "copyMessage", "forwardMessage", "editMessage", "createForumTopic")


@dataclass
class _Bucket:
    rate: float
    capacity: float
    tokens: float
    updated: float

    def wait(self, now: float, n: int) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return 0.0 if self.tokens >= n else (n - self.tokens) / self.rate


@dataclass
class TelegramLimits:
    """Counts every message the bot sends and tells when one is one too many."""

    global_per_second: int = 30
    private_rate: float = 1.0
    private_burst: float = 5.0
    group_per_minute: int = 20
    clock: Callable[[], float] = time.monotonic
    refused: int = 0  # 429s answered
    refused_by_chat: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    _global: deque[float] = field(default_factory=deque)
    _groups: dict[int, deque[float]] = field(default_factory=dict)
    _private: dict[int, _Bucket] = field(default_factory=dict)

    @staticmethod
    def counts(method: str) -> bool:
        return method.startswith(COUNTED_PREFIXES)

    def admit(self, chat_id: int, n: int = 1) -> float:
        """Count `n` messages to this chat now, or say how many seconds to wait (0: admitted)."""
        now = self.clock()
        waits = [_window_wait(self._global, now, 1.0, self.global_per_second, n)]
        if chat_id < 0:
            group = self._groups.setdefault(chat_id, deque())
            waits.append(_window_wait(group, now, 60.0, self.group_per_minute, n))
        else:
            bucket = self._private.get(chat_id)
            if bucket is None:
                bucket = _Bucket(self.private_rate, self.private_burst, self.private_burst, now)
                self._private[chat_id] = bucket
            waits.append(bucket.wait(now, n))
        wait = max(waits)
        if wait > 0:
            self.refused += 1
            self.refused_by_chat[chat_id] += 1
            return wait
        self._global.extend([now] * n)
        if chat_id < 0:
            self._groups[chat_id].extend([now] * n)
        else:
            self._private[chat_id].tokens -= n
        return 0.0

    @staticmethod
    def retry_after(wait: float) -> int:
        return max(1, math.ceil(wait))


def _window_wait(sent: deque[float], now: float, period: float, limit: int, n: int) -> float:
    while sent and sent[0] <= now - period:
        sent.popleft()
    over = len(sent) + n - limit
    if over <= 0:
        return 0.0
    if over > len(sent):
        return period  # more at once than the window ever holds
    return sent[over - 1] + period - now
