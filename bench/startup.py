"""Start-up time and memory: how soon the bot polls, and what it holds once a burst is over.

1. Start-up. The bot is started as a user starts it (`python -m bot`, SQLite in a temporary
   folder, against the Bot API stand-in) `--runs` times (default 5). Per run: seconds from the
   process's start until the stand-in receives its first getUpdates call, on a new database
   (the migrations run) and again on the same database (a restart: nothing to migrate). The
   bare bot (`bench/bare_bot.py`) is started the same way. Target: the desk polls within 1.5 s.
2. Memory after a burst (`--burst`, default 300; 0 skips it). The bot is started, warmed up with
   one customer, and its idle memory read after `--idle` seconds (default 5); then Telegram's
   limits are switched on in the stand-in (as `bench/burst.py` part 1: the desk with its own
   default flood control) and `--burst` customers write at once. Once every one is answered,
   `--idle` seconds pass and the process's current resident memory (VmRSS) and its peak (VmHWM)
   are read from /proc. The same for the bare bot (which answers a 429 by waiting
   `retry_after`). Targets: the desk idles under 100 MB after the burst, within 30 MB of the
   bare bot.

Usage: python bench/startup.py [--runs 5] [--burst 300] [--idle 5] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from harness import ROOT, STAFF, bot_env, first_poll, memory_mb, start_warm, stop

from bot.standin import BotApiStandIn, TelegramLimits

DESK = [sys.executable, "-m", "bot"]
BARE = [sys.executable, str(ROOT / "bench" / "bare_bot.py")]
POLL_TARGET = 1.5  # s from the process's start to its first getUpdates
IDLE_TARGET = 100.0  # MB resident, idle after the burst
BARE_MARGIN = 30.0  # MB over the bare bot


class TimedStandIn(BotApiStandIn):
    """The stand-in, noting when the first getUpdates call reaches it."""

    first_poll_at: float | None = None

    async def api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.first_poll_at is None:
            self.first_poll_at = time.monotonic()
        return await super().api_getUpdates(params)


async def time_to_poll(command: list[str], folder: str, extra: dict[str, str]) -> float:
    """Seconds from starting `command` until its first getUpdates reaches a fresh stand-in."""
    api = TimedStandIn()
    await api.start()
    api.add_group(STAFF, "staff")
    env = bot_env(api, folder, **extra)
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=folder, env=env)
    try:
        await first_poll(api, proc, timeout=60)
    finally:
        stop(proc)
        await api.stop()
    assert api.first_poll_at is not None
    return api.first_poll_at - started


@dataclass
class Memory:
    idle_before_mb: float
    answered: int
    doubled: int
    customers: int
    seconds: float
    refused: int
    idle_after_mb: float
    peak_mb: float


async def after_burst(
    command: list[str], customers: int, idle: float, extra: dict[str, str]
) -> Memory:
    api = BotApiStandIn(first_update_id=500_000)
    await api.start()
    api.add_group(STAFF, "staff")
    replies: dict[int, int] = {}
    last_reply = 0.0
    everyone = asyncio.Event()
    first_id = 10_000
    wanted = set(range(first_id, first_id + customers))

    def listener(kind: str, payload: Any) -> None:
        nonlocal last_reply
        if kind == "sent" and payload.chat_id in wanted:
            replies[payload.chat_id] = replies.get(payload.chat_id, 0) + 1
            if replies[payload.chat_id] == 1:
                last_reply = time.monotonic()
            if len(replies) == customers:
                everyone.set()

    api.listeners.append(listener)
    with tempfile.TemporaryDirectory() as folder:
        proc = await start_warm(api, command, folder, bot_env(api, folder, **extra))
        try:
            await asyncio.sleep(idle)
            idle_before, _ = memory_mb(proc.pid)
            api.limits = TelegramLimits()
            for i in range(customers):
                api.person(first_id + i, f"客户{i}", "zh").send("你好,我的花蔫了,怎么办")
            start = time.monotonic()
            try:
                await asyncio.wait_for(everyone.wait(), 300)
            except TimeoutError:
                pass
            await asyncio.sleep(idle)  # idle (doubled answers, if any, show up meanwhile)
            idle_after, peak = memory_mb(proc.pid)
        finally:
            stop(proc)
    await api.stop()
    return Memory(
        idle_before_mb=idle_before,
        answered=len(replies),
        doubled=sum(1 for n in replies.values() if n > 1),
        customers=customers,
        seconds=(last_reply or start) - start,
        refused=api.limits.refused if api.limits else 0,
        idle_after_mb=idle_after,
        peak_mb=peak,
    )


def spread(values: list[float]) -> str:
    return (
        f"min {min(values):.2f} s, median {statistics.median(values):.2f} s, "
        f"max {max(values):.2f} s"
    )


async def main(runs: int, customers: int, idle: float, database: str | None) -> None:
    extra = {"DATABASE_URL": database} if database else {}
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, database: {database or 'SQLite (file)'}"
    )

    print(f"\n1. Start-up: process start -> first getUpdates, {runs} runs")
    fresh: list[float] = []
    again: list[float] = []
    bare: list[float] = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory() as folder:
            fresh.append(await time_to_poll(DESK, folder, extra))
            again.append(await time_to_poll(DESK, folder, extra))
        with tempfile.TemporaryDirectory() as folder:
            bare.append(await time_to_poll(BARE, folder, {}))
        print(
            f"   run {run}: desk, new database {fresh[-1]:.2f} s; desk, restart {again[-1]:.2f} s;"
            f" bare bot {bare[-1]:.2f} s"
        )
    print(f"   desk, new database   {spread(fresh)}")
    print(f"   desk, restart        {spread(again)}")
    print(f"   bare PTB bot         {spread(bare)}")
    slowest = max(fresh + again)
    verdict = "met" if slowest <= POLL_TARGET else "MISSED"
    print(f"   target <= {POLL_TARGET} s in every run: {verdict} (slowest {slowest:.2f} s)")
    if database:
        print("   (a shared database is not new: both desk columns start on what is there)")

    if customers <= 0:
        return
    print(
        f"\n2. Memory: {customers} customers at once, Telegram's limits on, then {idle:.0f} s idle"
    )
    desk = await after_burst(DESK, customers, idle, extra)
    floor = await after_burst(BARE, customers, idle, {})
    for name, m in (("the desk", desk), ("bare PTB bot", floor)):
        print(
            f"   {name:<13} answered {m.answered}/{m.customers} (twice: {m.doubled}) in "
            f"{m.seconds:.2f} s, 429s {m.refused}; idle before {m.idle_before_mb:.1f} MB, "
            f"idle after {m.idle_after_mb:.1f} MB (VmRSS), peak {m.peak_mb:.1f} MB (VmHWM)"
        )
    over = desk.idle_after_mb - floor.idle_after_mb
    met = "met" if desk.idle_after_mb < IDLE_TARGET else "MISSED"
    print(
        f"   desk idle after the burst: {desk.idle_after_mb:.1f} MB "
        f"(target < {IDLE_TARGET:.0f} MB: {met})"
    )
    print(
        f"   over the bare bot: {over:+.1f} MB idle, {desk.peak_mb - floor.peak_mb:+.1f} MB peak"
        f" (target within {BARE_MARGIN:.0f} MB: {'met' if over <= BARE_MARGIN else 'MISSED'})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--burst", type=int, default=300, help="customers; 0: no memory part")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before reading")
    parser.add_argument("--database", default=None, help="DATABASE_URL (default: a SQLite file)")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.burst, args.idle, args.database))
