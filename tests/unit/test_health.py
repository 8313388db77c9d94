"""The health check's answer, with the database's and Redis's pings given as plain functions."""

from __future__ import annotations

import asyncio

from bot.metrics import Health


async def answers() -> None:
    return None


async def refuses() -> None:
    raise ConnectionRefusedError(111, "Connect call failed")


async def hangs() -> None:
    await asyncio.Event().wait()


async def leaks_its_url() -> None:
    raise OSError("cannot reach redis://:secret@10.0.0.5:6379/0")


async def test_ok_when_the_database_and_redis_answer() -> None:
    """Both answer: 200, each said ok."""
    health = Health("desk-a", answers, redis=answers)
    assert await health.check() == (
        200,
        {"status": "ok", "instance": "desk-a", "database": "ok", "redis": "ok"},
    )


async def test_unavailable_when_redis_refuses_or_does_not_answer_in_time() -> None:
    """Redis refusing, or silent past the timeout: 503 naming Redis and why."""
    refused = await Health("desk-a", answers, redis=refuses).check()
    assert refused == (
        503,
        {
            "status": "unavailable",
            "instance": "desk-a",
            "reason": "redis: ConnectionRefusedError: [Errno 111] Connect call failed",
        },
    )
    silent = await Health("desk-a", answers, redis=hangs, timeout=0.05).check()
    assert silent[0] == 503 and silent[1]["reason"] == "redis: no answer within 0.05 s"


async def test_a_reason_never_carries_an_address_with_its_password() -> None:
    """An error whose words hold a URL is named by its kind only."""
    status, body = await Health("desk-a", leaks_its_url).check()
    assert (status, body["reason"]) == (503, "database: OSError")


async def test_stopping_comes_first() -> None:
    """A stopping instance says so, whatever its database says."""
    health = Health("desk-a", refuses, stopping=lambda: True)
    assert await health.check() == (503, {"status": "stopping", "instance": "desk-a"})
