"""The dashboard's figures and a ticket's timeline, end to end: customers complain through the
Bot API stand-in over two weeks of the shop's calendar, staff answer (one in time, one late), a
remedy is chosen and rated, and the manager's session reads the heat map's cells, the stores,
the on-time share week by week, the backlog and a ticket's timeline, in the manager's language;
a bad period, an unknown ticket and no token are refused."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.standin import BotApiStandIn
from tests.conftest import MANAGER_ID, STAFF_CHAT
from tests.e2e.people import file_complaint, in_group, said
from tests.e2e.test_dashboard import init_data, sign_in

SHOP = ZoneInfo("Asia/Shanghai")
SUNDAY_EVENING = datetime(2026, 11, 22, 20, 0, tzinfo=SHOP)  # the week of Monday the 16th
ORDERS = (
    "订单编号,商品名称,批次号,送达时间,门店,区域\n"
    "FS2026112201,红玫瑰花束 33 支,B20261120,2026-11-22 10:00,静安店,上海\n"
    "FS2026112302,向日葵花篮,B20261121,2026-11-23 07:00,徐汇店,上海\n"
    "FS2026112303,红玫瑰花束 33 支,B20261120,2026-11-23 07:30,徐汇店,上海\n"
)


class ShopClock:
    """The desk's clock: `start` when made, running on at the real pace, moved on by
    `advance` (the next morning, a quarter of an hour without an answer)."""

    def __init__(self, start: datetime) -> None:
        self.start = start.astimezone(UTC)
        self.began = time.monotonic()
        self.moved = timedelta()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.began) + self.moved

    def advance(self, by: timedelta) -> None:
        self.moved += by


async def get(http: aiohttp.ClientSession, url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as answer:
        return answer.status, await answer.json()


async def test_the_figures_count_what_customers_and_staff_did(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """A complaint on Sunday evening, answered at once, remedied and rated 5, its root cause
    recorded; two on Monday morning, one answered after a quarter of an hour, one not at all:
    the heat map has them in their category's row and their week's column, the stores their
    orders give, the first week answered in time and the second not, a backlog of two, and
    the first ticket's timeline has the customer's words and the staff's answer."""
    clock = ShopClock(SUNDAY_EVENING)
    bot = await start_bot(clock=clock, follow_up_after="1s")
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    staff = api.person(3201, "小王", "zh")
    api.files["orders-nov"] = ORDERS.encode()
    manager.say_in_group(
        STAFF_CHAT,
        caption="/orders",
        document={"file_id": "orders-nov", "file_unique_id": "u-o", "file_name": "订单.csv"},
    )
    await in_group(api, "已导入")

    # Sunday evening: answered at once, the root cause recorded, a remedy chosen, rated 5
    xiaoming = api.person(2201, "小明", "zh")
    card = await file_complaint(api, xiaoming, order="FS2026112201", story="玫瑰一半都蔫了")
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "您好,非常抱歉!我们马上核实。", reply_to=card.message_id)
    await said(api, xiaoming, "我们马上核实", mark)
    staff.say_in_group(STAFF_CHAT, "/cause 产品 供应链", reply_to=card.message_id)
    await in_group(api, "小王 记录了 产品缺陷、供应链", mark)
    manager.tap("补偿方案:中等", chat_id=STAFF_CHAT)
    await said(api, xiaoming, "换作是我", mark)
    mark = len(api.sent)
    xiaoming.tap("退还一半货款")
    await in_group(api, "客户选择了「退还一半货款」", mark)
    staff.tap("✅ 已办妥,结案", chat_id=STAFF_CHAT)
    await said(api, xiaoming, "满意吗", mark)
    mark = len(api.sent)
    xiaoming.tap("5 非常满意")
    await said(api, xiaoming, "谢谢您的评价", mark)

    # Monday morning, the next week: one answered a quarter of an hour late, one not yet
    clock.advance(timedelta(hours=12))
    xiaohong = api.person(2202, "小红", "zh")
    late = await file_complaint(
        api, xiaohong, category="配送延误", order="FS2026112302", story="说好早上送到,还没到"
    )
    clock.advance(timedelta(minutes=15))
    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, "您好,我们马上联系配送员。", reply_to=late.message_id)
    await said(api, xiaohong, "马上联系配送员", mark)
    await file_complaint(api, api.person(2203, "小刚", "zh"), order="FS2026112303")
    await bot.settled()

    base = bot.app.http.url
    async with aiohttp.ClientSession() as http:
        data = init_data(api.token, MANAGER_ID, "zh", signed_at=clock().timestamp())
        status, session = await sign_in(http, base, data)
        assert status == 200
        token = session["token"]
        status, figures = await get(http, f"{base}/dashboard/api/figures?period=7d", token)
        assert status == 200
        assert figures["period"]["label"] == "7d" and figures["total"] == 3
        assert figures["heat"] == {
            "weeks": ["2026-11-16", "2026-11-23"],
            "rows": [
                {"key": "quality", "label": "花材质量", "counts": [1, 1]},
                {"key": "late", "label": "配送延误", "counts": [0, 1]},
            ],
            "max": 1,
        }
        assert figures["stores"] == {
            "categories": [
                {"key": "quality", "label": "花材质量"},
                {"key": "late", "label": "配送延误"},
            ],
            "rows": [
                {"store": "徐汇店", "counts": [1, 1]},
                {"store": "静安店", "counts": [1, 0]},
            ],
            "max": 1,
        }
        assert figures["on_time"] == {
            "weeks": ["2026-11-16", "2026-11-23"],
            "answered": [1, 1],
            "in_time": [1, 0],
            "share": [1.0, 0.0],
            "within_minutes": 10,  # SLA_FIRST_RESPONSE
        }
        assert 7.5 <= figures["first_answer_median_minutes"] < 9  # (0 and 15 minutes) / 2
        assert figures["resolve_median_hours"] < 1
        assert figures["satisfaction"] == {
            "average": 5.0,
            "answers": 1,
            "scores": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1},
        }
        assert figures["backlog"] == 2
        assert figures["repeats"] == {
            "products": [
                {"name": "红玫瑰花束 33 支", "count": 2},
                {"name": "向日葵花篮", "count": 1},
            ],
            "batches": [{"name": "B20261120", "count": 2}, {"name": "B20261121", "count": 1}],
            "root_causes": [{"key": "product_defect", "label": "产品缺陷", "count": 1}],
        }

        status, backlog = await get(http, f"{base}/dashboard/api/backlog", token)
        assert status == 200
        # neither overdue: the sooner promise first (the unanswered one's first answer)
        assert [(t["reference"], t["overdue"]) for t in backlog["tickets"]] == [
            ("T-000003", False),
            ("T-000002", False),
        ]
        assert [t["next_deadline_kind"] for t in backlog["tickets"]] == [
            "first_response",
            "progress",
        ]
        assert backlog["tickets"][1]["category_label"] == "配送延误"

        status, record = await get(http, f"{base}/dashboard/api/tickets/T-000001", token)
        assert status == 200
        assert (record["reference"], record["customer"]) == ("T-000001", "小明")
        assert (record["category_label"], record["status_label"]) == ("花材质量", "已结案")
        assert record["severity_label"] == "中等"
        entries = record["entries"]
        said_by = [
            (e["role"], e["direction"], e["text"]) for e in entries if e["kind"] == "message"
        ]
        assert ("customer", "in", "玫瑰一半都蔫了") in said_by
        assert ("staff", "out", "您好,非常抱歉!我们马上核实。") in said_by
        steps = [e["what"] for e in entries if e["kind"] == "event"]
        assert steps.index("提交给员工") < steps.index("首次回复") < steps.index("客户评分")
        assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)

        # an English-speaking manager reads the same figures in English
        data = init_data(api.token, MANAGER_ID, "en", signed_at=clock().timestamp())
        status, english = await sign_in(http, base, data)
        status, figures = await get(http, f"{base}/dashboard/api/figures", english["token"])
        assert status == 200 and figures["period"]["label"] == "7d"
        assert [row["label"] for row in figures["heat"]["rows"]] == [
            "Flower quality",
            "Late delivery",
        ]
        status, record = await get(
            http, f"{base}/dashboard/api/tickets/t-000002", english["token"]
        )
        assert (record["category_label"], record["status_label"]) == ("Late delivery", "open")


@pytest.mark.parametrize(
    ("path", "status", "error", "says"),
    [
        ("figures?period=last-month", 400, "bad_period", "看不懂这个时间段「last-month」"),
        ("figures?period=2026-13", 400, "bad_period", "2026-11"),
        ("tickets/T-999999", 404, "no_ticket", "没有找到投诉「T-999999」"),
        ("tickets/T-99999999999", 404, "no_ticket", "T-000123"),
        ("tickets/nonsense", 404, "no_ticket", "没有找到投诉"),
    ],
)
async def test_a_question_the_desk_cannot_answer_is_refused_and_no_token_gets_nothing(
    api: BotApiStandIn, start_bot: Any, path: str, status: int, error: str, says: str
) -> None:
    """A period the desk does not understand is 400, a ticket it does not have 404, each
    with a line in the manager's language; without a token the same call is 403."""
    bot = await start_bot()
    await file_complaint(api, api.person(2301, "小明", "zh"))
    base = bot.app.http.url
    async with aiohttp.ClientSession() as http:
        _, session = await sign_in(http, base, init_data(api.token, MANAGER_ID, "zh"))
        answer, refused = await get(http, f"{base}/dashboard/api/{path}", session["token"])
        assert (answer, refused["error"]) == (status, error)
        assert says in refused["message"]
        answer, refused = await get(http, f"{base}/dashboard/api/{path}")
        assert (answer, refused["error"]) == (403, "no_token")
        answer, refused = await get(http, f"{base}/dashboard/api/{path}", "forged.token")
        assert (answer, refused["error"]) == (403, "bad_token")
        answer, found = await get(http, f"{base}/dashboard/api/tickets/T-000001", session["token"])
        assert answer == 200 and found["reference"] == "T-000001"
