"""First-reply latency: how long a customer waits for the bot's first answer.

Starts the Bot API stand-in and the bot as a user starts it (`python -m bot`, SQLite in a
temporary folder), then measures, per customer, the time from the moment the message is
available to getUpdates until the stand-in receives the bot's empathy answer:

- one at a time (no load): `--quiet-customers` customers, one after another;
- a burst: `--burst` customers writing at the same moment (Telegram's limits off).

Usage: python bench/first_reply.py [--quiet-customers 50] [--burst 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time

from harness import STAFF, WIDE_OPEN, bot_env, start_warm, stop

from bot.standin import BotApiStandIn


def summary(name: str, waits: list[float]) -> str:
    waits = sorted(waits)
    p95 = waits[max(0, int(len(waits) * 0.95) - 1)]
    return (
        f"{name}: n={len(waits)} median={statistics.median(waits) * 1000:.1f} ms "
        f"p95={p95 * 1000:.1f} ms worst={waits[-1] * 1000:.1f} ms"
    )


async def main(quiet: int, burst: int) -> None:
    api = BotApiStandIn()
    await api.start()
    api.add_group(STAFF, "staff")
    pushed: dict[int, float] = {}
    answered: dict[int, float] = {}

    def listener(kind: str, payload: object) -> None:
        if kind == "user":
            pushed.setdefault(payload["chat"]["id"], time.monotonic())  # type: ignore[index]
        elif kind == "sent" and payload.chat_id > 0:  # type: ignore[attr-defined]
            answered.setdefault(payload.chat_id, time.monotonic())  # type: ignore[attr-defined]

    api.listeners.append(listener)
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "bot"]
        proc = await start_warm(api, command, folder, bot_env(api, folder, **WIDE_OPEN))
        try:
            for i in range(quiet):
                person = api.person(10_000 + i, f"客户{i}", "zh")
                person.send("你好,我的花蔫了")
                await api.wait_text(person.id, "抱歉", timeout=30, after=len(api.sent) - 1)
            quiet_waits = [answered[10_000 + i] - pushed[10_000 + i] for i in range(quiet)]

            people = [api.person(20_000 + i, f"客户{i}", "zh") for i in range(burst)]
            for person in people:
                person.send("你好,我的花蔫了")
            for person in people:
                await api.wait_text(person.id, "抱歉", timeout=120)
            burst_waits = [answered[p.id] - pushed[p.id] for p in people]
        finally:
            stop(proc)
    await api.stop()
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(summary("one at a time", quiet_waits))
    print(summary(f"burst of {burst}", burst_waits))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quiet-customers", type=int, default=50)
    parser.add_argument("--burst", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(main(args.quiet_customers, args.burst))
