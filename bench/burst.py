"""A shop's bad day: N customers write at the same moment. How fast is every one answered?

1. Telegram's limits on. The Bot API stand-in enforces them (30 messages a second overall, one a
   second per private chat with short bursts, 20 a minute per group; 429 past them) and the bot
   runs as a user starts it (`python -m bot`, its default flood control, SQLite in a temporary
   folder). N customers (default 300) write at once. Printed: customers answered, time until
   the last first reply, the ideal time (N / 30 s) and their ratio, the 429s the bot caused,
   messages lost (customers never answered, or answered twice), the bot's peak memory (VmHWM).
2. The bot's own cost, limits off (stand-in and the bot's flood control opened wide): first
   replies a second to M customers (default 1000) writing at once, beside a bare
   python-telegram-bot bot (`bench/bare_bot.py`, a fixed text, no database) run the same way.

Times run from the moment the last customer's message is available to getUpdates until the
stand-in receives the last first reply. Each bot is warmed up with one customer first.

Usage: python bench/burst.py [--customers 300] [--cost-customers 1000] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT, STAFF, WIDE_OPEN, bot_env, start_warm, stop

from bot.standin import BotApiStandIn, TelegramLimits


@dataclass
class Result:
    customers: int
    answered: int
    doubled: int
    seconds: float
    refused: int
    peak_rss_mb: float

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (Linux VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def burst(
    command: list[str],
    customers: int,
    limits: bool,
    env: dict[str, str],
    first_id: int,
    timeout: float = 300.0,
) -> Result:
    """Start a bot with `command` against a fresh stand-in; `customers` write at once."""
    api = BotApiStandIn(first_update_id=first_id)  # runs may share one database
    await api.start()
    api.add_group(STAFF, "staff")
    first_reply: dict[int, float] = {}
    replies: dict[int, int] = {}
    everyone = asyncio.Event()
    wanted = set(range(first_id, first_id + customers))

    def listener(kind: str, payload: object) -> None:
        if kind != "sent":
            return
        chat = payload.chat_id  # type: ignore[attr-defined]
        if chat in wanted:
            replies[chat] = replies.get(chat, 0) + 1
            first_reply.setdefault(chat, time.monotonic())
            if len(first_reply) == customers:
                everyone.set()

    api.listeners.append(listener)
    with tempfile.TemporaryDirectory() as folder:
        proc = await start_warm(api, command, folder, bot_env(api, folder, **env))
        try:
            await asyncio.sleep(1.5)  # the warm-up customer's own window passes
            api.limits = TelegramLimits() if limits else None
            people = [api.person(first_id + i, f"客户{i}", "zh") for i in range(customers)]
            for person in people:
                person.send("你好,我的花蔫了,怎么办")
            start = time.monotonic()
            try:
                await asyncio.wait_for(everyone.wait(), timeout)
            except TimeoutError:
                pass
            await asyncio.sleep(1.0)  # doubled answers, if any, show up
            last = max(first_reply.values(), default=start)
            rss = peak_rss_mb(proc.pid)
        finally:
            stop(proc)
    await api.stop()
    return Result(
        customers=customers,
        answered=len(first_reply),
        doubled=sum(1 for n in replies.values() if n > 1),
        seconds=last - start,
        refused=api.limits.refused if api.limits else 0,
        peak_rss_mb=rss,
    )


async def main(customers: int, cost_customers: int, database: str | None) -> None:
    desk = [sys.executable, "-m", "bot"]
    bare = [sys.executable, str(ROOT / "bench" / "bare_bot.py")]
    extra = {"DATABASE_URL": database} if database else {}
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, database: {database or 'SQLite (file)'}"
    )

    limited = await burst(desk, customers, True, extra, 100_000)
    ideal = customers / 30
    print(f"\n1. {customers} customers at once, Telegram's limits on (the desk)")
    print(f"   customers answered        {limited.answered} / {limited.customers}")
    print(f"   last first reply after    {limited.seconds:.2f} s")
    print(f"   ideal (N / 30 a second)   {ideal:.2f} s")
    print(f"   ratio                     {limited.seconds / ideal:.3f}   (target <= 1.1)")
    print(f"   429s the bot caused       {limited.refused}")
    lost = limited.customers - limited.answered + limited.doubled
    print(f"   messages lost             {lost}   (unanswered or answered twice)")
    print(f"   bot's peak memory (RSS)   {limited.peak_rss_mb:.0f} MB   (target < 200 MB)")

    own = await burst(desk, cost_customers, False, {**WIDE_OPEN, **extra}, 200_000)
    floor = await burst(bare, cost_customers, False, {}, 300_000)
    print(f"\n2. The bot's own cost: {cost_customers} customers at once, limits off")
    for name, result in (("the desk", own), ("bare PTB bot", floor)):
        print(
            f"   {name:<17} {result.per_second:7.0f} first replies/s "
            f"({result.answered}/{result.customers} in {result.seconds:.2f} s, "
            f"peak {result.peak_rss_mb:.0f} MB)"
        )
    share = own.per_second / floor.per_second if floor.per_second else 0.0
    print(f"   desk / bare               {share:.2f}   (target >= 0.5)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--cost-customers", type=int, default=1000)
    parser.add_argument("--database", default=None, help="DATABASE_URL (default: a SQLite file)")
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.cost_customers, args.database))
