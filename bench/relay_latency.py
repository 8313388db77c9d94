"""Staff and manager to customer: how long until the customer sees a staff reply, and the
manager's remedy offer after the tap.

Starts the Bot API stand-in and the bot as a user starts it (`python -m bot`, SQLite in a
temporary folder, its flood control opened wide: the figures are the desk's own cost, not
Telegram's limits), files one complaint per round, then measures
from the moment the staff member's reply (or the manager's tap) is available to getUpdates until
the stand-in receives the message to the customer. Targets: 0.1 s for both.

Usage: python bench/relay_latency.py [--rounds 20]
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

MANAGER = 900_001


def summary(name: str, waits: list[float]) -> str:
    waits = sorted(waits)
    p95 = waits[max(0, int(len(waits) * 0.95) - 1)]
    return (
        f"{name}: n={len(waits)} median={statistics.median(waits) * 1000:.1f} ms "
        f"p95={p95 * 1000:.1f} ms worst={waits[-1] * 1000:.1f} ms"
    )


async def main(rounds: int) -> None:
    api = BotApiStandIn()
    await api.start()
    api.add_group(STAFF, "staff")
    replies: list[float] = []
    offers: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        env = bot_env(api, folder, MANAGER_IDS=str(MANAGER), **WIDE_OPEN)
        proc = await start_warm(api, [sys.executable, "-m", "bot"], folder, env)
        staff = api.person(800_000, "小王", "zh")
        manager = api.person(MANAGER, "陈店长", "zh")
        try:
            for index in range(rounds):
                customer = api.person(30_000 + index, f"客户{index}", "zh")
                mark = len(api.sent)
                customer.send("订单 FS2026112301 的花全蔫了,一半都不能看,电话 13800138000")
                await api.wait_text(customer.id, "照片", timeout=30, after=mark)
                customer.tap("没有照片,跳过")
                await api.wait_text(customer.id, "请您核对", timeout=30, after=mark)
                customer.tap("✅ 提交")
                card = await api.wait_for(
                    lambda s, c=customer: (
                        s.chat_id == STAFF and "投诉单" in s.text and c.first_name in s.text
                    ),
                    timeout=30,
                    after=mark,
                )
                mark = len(api.sent)
                started = time.monotonic()
                staff.say_in_group(STAFF, f"您好,第{index}单我来跟进", reply_to=card.message_id)
                await api.wait_text(customer.id, f"第{index}单", timeout=30, after=mark)
                replies.append(time.monotonic() - started)
                mark = len(api.sent)
                started = time.monotonic()
                manager.tap("补偿方案:中等", chat_id=STAFF)
                await api.wait_for(
                    lambda s, c=customer: s.chat_id == c.id and bool(s.buttons()),
                    timeout=30,
                    after=mark,
                )
                offers.append(time.monotonic() - started)
        finally:
            stop(proc)
    await api.stop()
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(summary("staff reply to customer", replies))
    print(summary("manager's tap to the customer's options", offers))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.rounds))
