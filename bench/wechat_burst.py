"""A burst on WeChat: N customers (default 100) write to the shop's WeCom customer-service
account at the same moment. Is every one answered, are WeCom's callbacks answered well inside
its 5-second retry limit, and is nothing pulled twice?

The Bot API stand-in (the staff group) and the WeCom stand-in (`bot/standin/wecom.py`, which
signs and encrypts a callback for each message and retries one not answered within 5 s), and
the bot as a user starts it (`python -m bot`, SQLite in a temporary folder, the WeCom settings
pointed at the stand-in). Printed: customers answered, answered twice, the time until the last
first answer, the callbacks (how many, the slowest answer, retries), and messages stored.

Usage: python bench/wechat_burst.py [--customers 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from harness import STAFF, WIDE_OPEN, bot_env, stop

from bot.standin import BotApiStandIn
from bot.standin.wecom import WeComStandIn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def main(customers: int) -> None:
    api = BotApiStandIn()
    await api.start()
    api.add_group(STAFF, "staff")
    wecom = WeComStandIn()
    wecom_url = await wecom.start()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        env = bot_env(
            api,
            folder,
            WECOM_CORP_ID=wecom.corp_id,
            WECOM_SECRET=wecom.secret,
            WECOM_TOKEN=wecom.token,
            WECOM_AES_KEY=wecom.aes_key,
            WECOM_OPEN_KFID=wecom.open_kfid,
            WECOM_API_URL=wecom_url,
            WECOM_CALLBACK_PORT=str(port),
            **WIDE_OPEN,
        )
        proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=folder, env=env)
        try:
            await api.wait_calls("getUpdates", 1, timeout=60)
            wecom.set_callback(f"http://127.0.0.1:{port}/wecom/callback")
            warm = wecom.customer("wmWARMUP", "warm-up")
            warm.say("你好")
            await wecom.wait_sent(lambda s: s.touser == "wmWARMUP", timeout=30)
            first_callbacks = len(wecom.callbacks)

            people = [wecom.customer(f"wmBURST{i:05d}", f"客户{i}") for i in range(customers)]
            started = time.monotonic()
            for person in people:
                person.say("你好,我订的花全都蔫了,太失望了")
            wanted = {p.external_userid for p in people}

            def answered() -> set[str]:
                return {s.touser for s in wecom.sent if s.touser in wanted}

            await wecom.until(lambda: answered() == wanted, timeout=180)
            took = time.monotonic() - started
            await wecom.settle()
            firsts = [s.touser for s in wecom.sent if s.touser in wanted and "抱歉" in s.text]
            attempts = wecom.callbacks[first_callbacks:]
            seconds = sorted(a.seconds for a in attempts if a.status is not None)
            retries = sum(1 for a in attempts if a.attempt > 1)
            with sqlite3.connect(f"{folder}/bench.db") as db:
                stored = db.execute("SELECT count(*) FROM wecom_inbox").fetchone()[0]
        finally:
            stop(proc)
    await wecom.stop()
    await api.stop()
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"customers: {customers}, answered: {len(set(firsts))}, answered twice: "
        f"{len(firsts) - len(set(firsts))}, last first answer after {took:.2f} s"
    )
    print(
        f"callbacks: {len(attempts)} (retries {retries}), answer median "
        f"{statistics.median(seconds) * 1000:.1f} ms, slowest {seconds[-1] * 1000:.1f} ms "
        f"(WeCom retries after 5 s)"
    )
    print(f"messages stored: {stored} (one each: {stored == customers + 1})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.customers))
