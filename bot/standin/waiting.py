"""The one way the stand-ins wait: until a condition holds, looked at again each time the
stand-in notes that something happened (a barrier, never a fixed sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(
    changed: asyncio.Condition,
    condition: Callable[[], bool],
    timeout: float,
    failure: Callable[[], str] = lambda: "the condition did not hold",
) -> None:
    """Return once `condition()` holds; TimeoutError (with `failure()`) after `timeout`."""
    deadline = time.monotonic() + timeout
    async with changed:
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{failure()} within {timeout}s")
            try:
                await asyncio.wait_for(changed.wait(), timeout=remaining)
            except TimeoutError:
                pass
