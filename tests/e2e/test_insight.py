"""Insight for the manager, end to end in the staff group: the orders file, the card that shows
the order, /stats with its chart, /export with the record, /ticket, and who may ask."""

from __future__ import annotations

import csv
import io
from typing import Any

import openpyxl
from PIL import Image

from bot.standin import BotApiStandIn
from tests.conftest import MANAGER_ID, STAFF_CHAT
from tests.e2e.people import file_complaint, in_group

ORDERS = (
    "订单编号,商品名称,批次号,送达时间,门店,区域,备注\n"
    "FS2026112301,红玫瑰花束 33 支,B20261120,2026-11-23 10:00,静安店,上海,生日 <加急>\n"
    "FS2026112302,向日葵花篮,B20261121,2026-11-23 11:00,徐汇店,上海,\n"
)


def upload(api: BotApiStandIn, name: str) -> tuple[str, bytes]:
    """The newest file the bot uploaded whose name ends so."""
    return next((n, data) for n, data in reversed(api.uploads) if n.endswith(name))


async def test_orders_then_a_complaint_then_the_managers_figures(
    api: BotApiStandIn, start_bot: Any
) -> None:
    await start_bot()
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    api.files["orders-nov"] = "\ufeff".join(["", ORDERS]).encode()
    manager.say_in_group(
        STAFF_CHAT,
        caption="/orders",
        document={"file_id": "orders-nov", "file_unique_id": "u-o", "file_name": "十一月订单.csv"},
    )
    imported = await in_group(api, "已导入")
    assert "2 个订单" in imported.text and "商品名称" in imported.text

    card = await file_complaint(api, api.person(2101, "小明", "zh"))
    assert "订单记录" in card.text
    assert "红玫瑰花束 33 支" in card.text and "B20261120" in card.text
    assert "生日 <加急>" in card.text  # shown as written, not as markup

    staff = api.person(3102, "小王", "zh")
    staff.say_in_group(STAFF_CHAT, "/cause 产品 供应链", reply_to=card.message_id)
    await in_group(api, "小王 记录了 产品缺陷、供应链")
    await api.wait_for(lambda s: s.message_id == card.message_id and "🔎 原因:产品缺陷" in s.text)

    mark = len(api.sent)
    manager.say_in_group(STAFF_CHAT, "/stats 7d")
    figures = await in_group(api, "投诉统计", mark)
    assert "共 1 单投诉" in figures.text and "花材质量 1" in figures.text
    assert "红玫瑰花束 33 支 1 单" in figures.text
    await api.wait_for(lambda s: s.chat_id == STAFF_CHAT and s.kind == "photo", after=mark)
    name, png = upload(api, ".png")
    with Image.open(io.BytesIO(png)) as chart:
        assert chart.format == "PNG" and chart.width >= 800

    mark = len(api.sent)
    manager.say_in_group(STAFF_CHAT, "/export 30d")
    await in_group(api, "投诉记录", mark)
    await api.until(lambda: any(n.endswith(".csv") for n, _ in api.uploads))
    _, xlsx = upload(api, ".xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx)).active
    assert sheet is not None
    header, *rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert len(rows) == 1
    row = dict(zip(header, rows[0], strict=True))
    assert row["投诉单号"] == "T-000001" and row["订单号"] == "FS2026112301"
    assert (row["商品"], row["批次"], row["门店"]) == ("红玫瑰花束 33 支", "B20261120", "静安店")
    assert row["联系方式"] == "138****8000" and row["问题类型"] == "花材质量"
    _, table = upload(api, ".csv")
    assert table.startswith(b"\xef\xbb\xbf")
    assert list(csv.reader(io.StringIO(table.decode("utf-8-sig"))))[1][0] == "T-000001"

    mark = len(api.sent)
    manager.say_in_group(STAFF_CHAT, "/ticket T-000001")
    record = await in_group(api, "T-000001 全程记录", mark)
    assert "提交给员工" in record.text and "花送到的时候一半都蔫了" in record.text


async def test_only_managers_see_the_figures_and_a_bad_period_is_explained(
    api: BotApiStandIn, start_bot: Any
) -> None:
    await start_bot()
    staff = api.person(3101, "小王", "zh")
    staff.say_in_group(STAFF_CHAT, "/stats")
    refused = await in_group(api, "只有店长可以用")
    assert "小王" in refused.text
    manager = api.person(MANAGER_ID, "陈店长", "zh")
    mark = len(api.sent)
    manager.say_in_group(STAFF_CHAT, "/stats 上个月")
    explained = await in_group(api, "看不懂这个时间段", mark)
    assert "/stats 30d" in explained.text


async def test_the_weekly_report_comes_once_a_week_with_its_chart(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """Monday morning the managers get the week's figures, the chart and the three things to
    fix first; asked again the same week (a restart), nothing is sent twice."""
    from datetime import UTC, datetime, time, timedelta

    from bot.domain.clock import weekly_due
    from handlers import manager as manager_cases

    bot = await start_bot()
    await file_complaint(api, api.person(2102, "小红", "zh"))
    # next week's Monday, 9:00 in the shop (this week's report may have gone at the start)
    now = weekly_due(datetime.now(UTC) + timedelta(days=7), "Asia/Shanghai", 0, time(9, 0))

    mark = len(api.sent)
    async with bot.app.new_uow() as uow:
        assert await manager_cases.weekly_report(uow, bot.app.desk, now)
        await uow.commit()
    report = await in_group(api, "「花材质量」最多(1 单)", mark)
    assert "最该先改的三件事" in report.text and "1. " in report.text
    assert "本周投诉周报" in report.text
    await api.wait_for(lambda s: s.chat_id == STAFF_CHAT and s.kind == "photo", after=mark)

    async with bot.app.new_uow() as uow:
        assert not await manager_cases.weekly_report(uow, bot.app.desk, now)
