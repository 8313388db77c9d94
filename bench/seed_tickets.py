"""A database full of complaints, for timing what the manager asks (`/summary`, the record,
`/ticket`): `count` tickets submitted over the last `days` days, with orders, and (unless
`history=False`) each ticket's events and messages.

The values look like the bundled flower shop's year: its categories and tiers
(`bot/policies/flower_shop.yaml`), Chinese names, products and batches, phones in the contact,
about 80 % of tickets answered by a person (median about 6 minutes), most of the older ones
resolved and closed, a few per cent still with staff, a few still in the intake or cancelled.
The same `seed` gives the same database (for the same `now`).

Rows are written in batches with executemany (`insert(table)`), not through the domain: 100,000
tickets take seconds, not minutes. The schema is created first (`storage.migrate.migrate`); an
existing database gets the new tickets after its own.

Usage:
    .venv/bin/python -m bench.seed_tickets --url sqlite+aiosqlite:///scratch/desk.db
    .venv/bin/python -m bench.seed_tickets --url postgresql+asyncpg://postgres@127.0.0.1/x \\
        --count 100000 --days 365 --seed 1 [--no-history]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.config import BUNDLED_POLICY
from bot.policy import load_policy
from storage.db import create_engine
from storage.migrate import migrate
from storage.models import EventRow, MessageRow, OrderRow, TicketRow

BATCH = 5000  # tickets a transaction

CATEGORY_WEIGHTS = {
    "late": 25,
    "quality": 25,
    "packaging": 14,
    "wrong_item": 14,
    "attitude": 6,
    "refund": 10,
    "other": 6,
}
PRODUCTS = [
    "红玫瑰花束",
    "粉玫瑰礼盒",
    "向日葵花束",
    "百合花篮",
    "康乃馨花束",
    "郁金香花束",
    "绣球花束",
    "满天星花束",
    "永生花礼盒",
    "开业花篮",
    "蝴蝶兰盆栽",
    "香槟玫瑰花束",
]
STORES = [
    ("静安店", "上海"),
    ("徐汇店", "上海"),
    ("浦东店", "上海"),
    ("朝阳店", "北京"),
    ("海淀店", "北京"),
    ("天河店", "广州"),
    ("南山店", "深圳"),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = ["小明", "丽丽", "建国", "芳", "静", "伟", "敏", "磊", "婷婷", "浩", "雪", "洋", "欣怡"]
STAFF = [("501", "小王"), ("502", "小李"), ("503", "小张"), ("504", "小陈")]
STORIES = {
    "late": ["说好中午送到，现在还没到", "生日已经过了花才到", "配送员一直联系不上"],
    "packaging": ["包装盒压坏了", "外包装淋湿了", "丝带散了，包装纸破了"],
    "quality": ["花收到就蔫了", "玫瑰花瓣发黑", "第二天就凋谢了", "百合没有开，叶子发黄"],
    "wrong_item": ["订的红玫瑰送成了粉玫瑰", "少放了贺卡", "花篮尺寸不对"],
    "attitude": ["客服态度很不耐烦", "配送员说话很冲"],
    "refund": ["申请退款三天了没有回复", "想退货，怎么操作"],
    "other": ["发票还没开", "想改一下配送地址"],
}
CLOSE_SCORES = {3: 15, 4: 35, 5: 50}  # a score of 1-2 reopens the ticket


@dataclass
class Seeded:
    tickets: int
    orders: int
    events: int
    messages: int
    seconds: float


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return math.exp(rng.gauss(math.log(median), sigma))


def _pick(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


class _Shop:
    """The bundled policy's keys: categories, tiers and how many options each tier has."""

    def __init__(self) -> None:
        policy = load_policy(BUNDLED_POLICY)
        keys = [c.key for c in policy.intake.categories]
        self.categories = {k: CATEGORY_WEIGHTS.get(k, 5) for k in keys}
        self.tiers = {t.key: len(t.options) for t in policy.ladder.tiers}
        self.tier_weights = dict(zip(self.tiers, (50, 30, 15, 5, 2, 1), strict=False))


_Written = tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]], list[Any]]


def _tickets(
    rng: random.Random, shop: _Shop, first_id: int, moments: list[datetime], now: datetime
) -> Iterator[_Written]:
    """Each ticket's row, its order's row (or None), its events and its messages."""
    for offset, submitted in enumerate(moments):
        yield _ticket(rng, shop, first_id + offset, submitted, now)


def _ticket(
    rng: random.Random, shop: _Shop, ticket_id: int, submitted: datetime, now: datetime
) -> _Written:
    age = now - submitted
    roll = rng.random()
    if roll < 0.02:
        status = "intake"
    elif roll < 0.03:
        status = "cancelled"
    elif age < timedelta(days=2):
        status = rng.choice(["open", "open", "remedy_offered", "remedy_chosen", "resolved"])
    elif roll < 0.036:
        status = rng.choice(["open", "remedy_offered", "remedy_chosen"])  # the old backlog
    elif roll < 0.15:
        status = "resolved"
    else:
        status = "closed"
    submitted_at = None if status in ("intake", "cancelled") else submitted
    created = submitted - timedelta(minutes=_lognormal(rng, 3, 0.6))
    category = _pick(rng, shop.categories)
    channel = "telegram" if rng.random() < 0.65 else "wecom"
    customer_id = (
        str(rng.randrange(10**8, 10**10)) if channel == "telegram" else f"wm{ticket_id:010d}"
    )
    name = rng.choice(SURNAMES) + rng.choice(GIVEN)
    phone = f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"
    contact = rng.choice([phone, f"手机 {phone}", f"{name} {phone}"])
    order_number = f"FS{submitted:%Y%m%d}{ticket_id:06d}" if rng.random() < 0.75 else None
    product = rng.choice(PRODUCTS) if rng.random() < 0.6 else None
    batch = f"B{(submitted - timedelta(days=2)):%m%d}-{rng.randrange(1, 4)}"
    row: dict[str, Any] = {
        "id": ticket_id,
        "channel": channel,
        "customer_id": customer_id,
        "customer_name": name,
        "customer_username": None,
        "language": "zh" if rng.random() < 0.9 else "en",
        "status": status,
        "category": category,
        "order_number": order_number,
        "order_skipped": order_number is None,
        "story": rng.sample(
            STORIES[category], k=min(len(STORIES[category]), 1 + rng.randrange(2))
        ),
        "photos": [f"photo-{ticket_id}-{n}" for n in range(rng.choice([0, 0, 1, 1, 2, 3]))],
        "photos_done": submitted_at is not None,
        "contact": contact if rng.random() < 0.85 else None,
        "contact_skipped": False,
        "created_at": created,
        "submitted_at": submitted_at,
        "clock_started_at": submitted_at,
        "severity": _pick(rng, shop.tier_weights) if rng.random() < 0.7 else None,
        "severity_words": [],
        "priority_words": [],
        "product": product,
        "batch": batch if product and rng.random() < 0.6 else None,
    }
    events: list[dict[str, Any]] = []
    messages: list[Any] = []

    def event(kind: str, at: datetime, who: tuple[str, str, str], detail: str = "") -> None:
        events.append(
            {
                "ticket_id": ticket_id,
                "kind": kind,
                "actor_id": who[0],
                "actor_name": who[1],
                "actor_role": who[2],
                "at": at,
                "detail": detail,
            }
        )

    def message(direction: str, at: datetime, who: tuple[str, str], said: str) -> None:
        messages.append(
            {
                "ticket_id": ticket_id,
                "direction": direction,
                "sender_id": who[0],
                "sender_name": who[1],
                "kind": "text",
                "text": said,
                "chat_id": customer_id if direction == "in" else "-1001234567890",
                "message_id": None,
                "at": at,
            }
        )

    customer = (customer_id, name, "customer")
    bot = ("0", "bot", "bot")
    event("received", created, customer)
    event("in_intake", created, bot)
    message("in", created, (customer_id, name), row["story"][0])
    if submitted_at is None:
        if status == "cancelled":
            event("cancelled", created + timedelta(minutes=2), customer)
        return row, None, events, messages
    event("submitted", submitted_at, customer)
    with_staff = status in ("open", "remedy_offered", "remedy_chosen")
    if rng.random() < 0.03 and not with_staff:
        row["clock_started_at"] = submitted_at + timedelta(hours=_lognormal(rng, 20, 0.5))
    started = row["clock_started_at"]
    answered = rng.random() < (0.55 if with_staff else 0.82)
    staff = rng.choice(STAFF)
    answer_at = started + timedelta(minutes=_lognormal(rng, 6, 1.0))
    if answered and answer_at < now:
        row.update(
            taken_by_id=staff[0],
            taken_by_name=staff[1],
            first_response_at=answer_at,
            first_response_by_id=staff[0],
            first_response_by_name=staff[1],
        )
        event("taken", max(started, answer_at - timedelta(seconds=30)), (*staff, "staff"))
        event("answered", answer_at, (*staff, "staff"))
        message("out", answer_at, staff, "您好，非常抱歉，我们马上为您处理")
    done = status in ("resolved", "closed")
    if status in ("remedy_offered", "remedy_chosen") or done and rng.random() < 0.55:
        tier = _pick(rng, shop.tier_weights)
        row["tier"] = tier
        event("remedy_offered", started + timedelta(minutes=30), (*staff, "staff"), tier)
        if status != "remedy_offered" and shop.tiers[tier]:
            row["chosen_option"] = rng.randrange(shop.tiers[tier])
    if done:
        resolved = started + timedelta(hours=_lognormal(rng, 5, 0.9))
        row["resolved_at"] = resolved
        event("resolved", resolved, (*staff, "staff"))
        if rng.random() < 0.45:
            row["root_cause"] = rng.choice(["product_defect", "service_mistake", "process_gap"])
            row["responsible"] = rng.choice(["store", "supply_chain", "courier"])
        if status == "closed":
            asked = resolved + timedelta(days=1)
            closed = asked + timedelta(hours=rng.choice([1, 2, 48]))
            row.update(follow_up_asked_at=asked, closed_at=closed)
            event("follow_up_asked", asked, bot)
            if rng.random() < 0.45:
                score = _pick(rng, CLOSE_SCORES)
                row["satisfaction"] = score
                event("rated", closed, customer, str(score))
                event("closed", closed, customer, "rated")
            else:
                event("closed", closed, bot, "accepted: no answer")
    order = None
    if order_number and rng.random() < 0.8:
        store, region = rng.choice(STORES)
        order = {
            "order_number": order_number,
            "product": rng.choice(PRODUCTS),
            "batch": batch,
            "delivered_at": f"{submitted:%Y-%m-%d} 12:00",
            "store": store,
            "region": region,
            "notes": None,
            "imported_at": submitted - timedelta(days=1),
        }
    return row, order, events, messages


async def _write(conn: AsyncConnection, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(table), rows)


async def seed(
    url: str,
    count: int = 100_000,
    days: int = 365,
    seed: int = 1,
    *,
    now: datetime | None = None,
    history: bool = True,
) -> Seeded:
    """Add `count` tickets submitted over the `days` days before `now` (default: the present
    moment) to the database at `url`, creating its schema first."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    await asyncio.to_thread(migrate, url)
    rng = random.Random(seed)
    shop = _Shop()
    span = days * 86400.0
    moments = sorted(now - timedelta(seconds=rng.random() * span) for _ in range(count))
    tickets = TicketRow.__table__
    totals = Seeded(0, 0, 0, 0, 0.0)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            first_id = ((await conn.scalar(select(func.max(TicketRow.id)))) or 0) + 1
        for start in range(0, count, BATCH):
            batch, orders, events, messages = [], [], [], []
            chunk = moments[start : start + BATCH]
            for row, order, ticket_events, ticket_messages in _tickets(
                rng, shop, first_id + start, chunk, now
            ):
                batch.append(row)
                if order:
                    orders.append(order)
                if history:
                    events += ticket_events
                    messages += ticket_messages
            # every ticket row names the same columns (executemany needs one statement)
            columns = {name for row in batch for name in row}
            batch = [{name: row.get(name) for name in columns} for row in batch]
            async with engine.begin() as conn:
                await _write(conn, tickets, batch)
                await _write(conn, OrderRow.__table__, orders)
                await _write(conn, EventRow.__table__, events)
                await _write(conn, MessageRow.__table__, messages)
            totals.tickets += len(batch)
            totals.orders += len(orders)
            totals.events += len(events)
            totals.messages += len(messages)
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":  # ids were given: the sequence follows
                await conn.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence('tickets', 'id'), "
                        "(SELECT max(id) FROM tickets))"
                    )
                )
            await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    totals.seconds = time.perf_counter() - started
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the database's SQLAlchemy URL")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-history", action="store_true", help="tickets and orders only: no events, messages"
    )
    args = parser.parse_args(argv)
    done = asyncio.run(
        seed(args.url, args.count, args.days, args.seed, history=not args.no_history)
    )
    print(
        f"{done.tickets} tickets, {done.orders} orders, {done.events} events, "
        f"{done.messages} messages in {done.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
