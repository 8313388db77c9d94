"""An all-WeCom shop in a burst: N WeChat customers (default 50) file a complaint at the same
moment, with three staff and one manager in the shop's WeCom app (STAFF_ROOM=wecom, no
Telegram). Does every card reach every member, how many messages does WeCom drop (each member
may receive 30 a minute from the app, and the excess is dropped without a word), and how fast
are WeCom's callbacks answered (it posts again after 5 s)?

The WeCom stand-in (`bot/standin/wecom.py`) plays WeChat customer service and the app, with
WeCom's documented rules: signed, encrypted callbacks posted again when not answered within
5 s; each member's 30 a minute and 1000 an hour, the excess dropped and counted in
`app_dropped`. The desk runs in-process against it, as `python -m bot demo` does (SQLite in a
temporary folder). Each customer goes through the intake (the story and the order in the first
message, no photo, a phone number) and submits; while the cards come, each staff member takes
the tickets whose number is theirs (ticket number modulo 3) from a card they received, so the
app's callback is under load too.

Printed: complaints submitted, for each member the tickets whose card they received, the
messages delivered and dropped; the time from the first app message to the last card delivered; the
customer-service and app callbacks (how many, median and slowest answer, retries).

Usage: python bench/wecom_staff_burst.py [--customers 50]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import build, serve  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.policy import load_policy  # noqa: E402
from bot.standin.wecom import AppMessage, Staff, WeComStandIn  # noqa: E402
from storage.migrate import migrate  # noqa: E402

STAFF_IDS = ("zhangsan", "lisi", "wangwu")
MANAGER_ID = "boss"
TAKE = "🙋 我来跟进"
TICKET = re.compile(r"T-(\d{6})")


async def file_complaint(wecom: WeComStandIn, number: int) -> None:
    """One WeChat customer goes through the intake and submits."""
    who = f"wmBURST{number:05d}"
    customer = wecom.customer(who, f"客户{number}")

    async def told(needle: str, mark: int) -> None:
        await wecom.wait_sent(lambda s: s.touser == who and needle in s.text, 120, mark)

    mark = len(wecom.sent)
    customer.say(f"你好,我订的生日花束全都蔫了,订单号 FS2026{number:06d}")
    await told("照片", mark)
    mark = len(wecom.sent)
    customer.tap("没有照片,跳过")
    await told("怎么联系您", mark)
    mark = len(wecom.sent)
    customer.say(f"1380013{number:04d}")
    await told("请您核对", mark)
    mark = len(wecom.sent)
    customer.tap("✅ 提交")
    await told("投诉单号是", mark)


def ticket_of(message: AppMessage) -> int | None:
    found = TICKET.search(message.title)
    return int(found.group(1)) if found else None


async def take_theirs(
    wecom: WeComStandIn, member: Staff, index: int, done: asyncio.Event, taps: list[int]
) -> None:
    """Take, from the card received, each ticket whose number modulo 3 is this member's."""
    seen = 0

    def arrived(count: int) -> bool:
        return done.is_set() or len(wecom.app_received(member.userid)) > count

    while not done.is_set():
        mine = wecom.app_received(member.userid)
        for message in mine[seen:]:
            number = ticket_of(message)
            if number and number % len(STAFF_IDS) == index and TAKE in message.buttons():
                member.tap(message, next(b["key"] for b in message.card["button_list"]
                                         if b["text"] == TAKE))  # fmt: skip
                taps.append(number)
        seen = len(mine)
        try:
            await wecom.until(lambda n=seen: arrived(n), 5)
        except TimeoutError:
            pass


def spread(seconds: list[float]) -> str:
    if not seconds:
        return "none"
    ordered = sorted(seconds)
    return (
        f"median {statistics.median(ordered) * 1000:.0f} ms, slowest {ordered[-1] * 1000:.0f} ms"
    )


async def main(customers: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    wecom = WeComStandIn()
    with tempfile.TemporaryDirectory() as folder:
        database = f"sqlite+aiosqlite:///{folder}/bench.db"
        await asyncio.to_thread(migrate, database)
        await wecom.start()
        settings = load_settings(
            bot_token=None,
            database_url=database,
            default_language="zh",
            log_level="WARNING",
            **{
                **wecom.customer_service_settings(),
                **wecom.app_settings(list(STAFF_IDS), [MANAGER_ID]),
            },
            _env_file=None,
        )
        app = build(settings, load_policy(settings.shop_policy))
        desk = asyncio.create_task(serve(app, signals=False))
        try:
            await app.started.wait()
            port = app.callback_port()
            wecom.set_callback(f"http://127.0.0.1:{port}/wecom/callback")
            wecom.set_app_callback(f"http://127.0.0.1:{port}/wecom/app")
            members = [wecom.staff(u, u) for u in (*STAFF_IDS, MANAGER_ID)]
            done = asyncio.Event()
            taps: list[int] = []
            takers = [
                asyncio.create_task(take_theirs(wecom, m, i, done, taps))
                for i, m in enumerate(members[: len(STAFF_IDS)])
            ]
            started = time.monotonic()
            await asyncio.gather(*(file_complaint(wecom, n) for n in range(1, customers + 1)))
            submitted = time.monotonic() - started
            await app.lanes.idle()
            await app.sender.idle()
            last_card = max((m.at for m in wecom.app_sent if m.card is not None), default=0.0)
            done.set()
            await asyncio.gather(*takers)
            await wecom.settle()  # every callback posted (and retried, if it had to be)
            await app.lanes.idle()
            await app.sender.idle()
            async with app.new_uow(read_only=True) as uow:
                taken = 0
                for number in range(1, customers + 1):
                    ticket = await uow.tickets.get(number)
                    taken += ticket is not None and ticket.taken_by is not None
        finally:
            app.stop()
            await desk
            await wecom.stop()
    first_sent = min(m.at for m in wecom.app_sent) if wecom.app_sent else 0.0
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"customers: {customers}, submitted in {submitted:.2f} s; "
        f"the last card delivered {last_card - first_sent:.2f} s after the first app message"
    )
    everyone = True
    for member in members:
        got = {ticket_of(m) for m in member.received() if m.card is not None and ticket_of(m)}
        everyone = everyone and len(got) == customers
        print(
            f"  {member.userid:9} cards of {len(got):3}/{customers} tickets, "
            f"{len(member.received()):4} messages delivered, {member.dropped:4} dropped by WeCom"
        )
    print(f"every card reached every member: {everyone}; dropped in all: "
          f"{sum(wecom.app_dropped.values())}")  # fmt: skip
    print(f"takes tapped: {len(taps)}, tickets taken: {taken}")
    kf = [a.seconds for a in wecom.callbacks if a.status is not None]
    kf_retries = sum(1 for a in wecom.callbacks if a.attempt > 1)
    print(
        f"customer-service callbacks: {len(wecom.callbacks)} ({spread(kf)}, retries {kf_retries})"
    )
    app_seconds = [a.seconds for a in wecom.app_callbacks if a.status is not None]
    print(
        f"app callbacks: {len(wecom.app_callbacks)} ({spread(app_seconds)}, "
        f"retries {wecom.app_callback_retries}) (WeCom posts again after 5 s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.customers))
