"""The WeCom staff room's inbound side: a manager's insight commands in the 1:1 chat with the
app, facts about the current ticket, a message with no current ticket, staff photos, the
clock's pages to the managers, and a callback the desk could not handle."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
from PIL import Image
from sqlalchemy import update

from bot.standin.wecom import AppMessage, Staff, WeComStandIn
from storage.db import create_engine
from storage.models import DeadlineRow
from tests.e2e.test_insight import ORDERS
from tests.e2e.test_wechat import CUSTOMER, said_to
from tests.e2e.test_wecom_staff import card_of, complaint_filed, key_of, start_all_wecom, told
from tests.serving import serving


async def callback_answered(wecom: WeComStandIn, kind: str) -> None:
    """Until the app's callback of this kind (a member's file, say) was answered."""
    await wecom.until(
        lambda: any(a.kind == kind and a.status == 200 for a in wecom.app_callbacks), timeout=20
    )


async def sent_as(
    wecom: WeComStandIn, member: Staff, msgtype: str, after: int, name: str = ""
) -> AppMessage:
    """The first `msgtype` (image, file) the app sent the member from `after` on."""
    return await wecom.wait_app_sent(
        lambda m: (
            m.touser == member.userid
            and m.msgtype == msgtype
            and wecom.media[m.media_id or ""].filename.endswith(name)
        ),
        timeout=20,
        after=after,
    )


async def taken_by(wecom: WeComStandIn, member: Staff) -> None:
    card = await card_of(wecom, member)
    mark = len(wecom.app_sent)
    member.tap(card, key_of(card, "🙋"))
    await told(wecom, member, "由你跟进", mark)


async def test_a_manager_asks_for_the_figures_in_the_app(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """/orders with no file says the rule; the orders file sent to the app, then /orders,
    imports it; /cause reaches the current ticket; /stats answers with its figures and the
    chart as an image, /export with the workbook and the CSV as files, /ticket with the
    timeline, all to the manager only; a member who is not a manager is refused."""
    zhang, li, boss = wecom.staff("zhangsan"), wecom.staff("lisi"), wecom.staff("boss")
    await start_all_wecom(start_bot, wecom)

    boss.say("/orders")
    await told(wecom, boss, "没有找到订单表")
    boss.send_file(ORDERS.encode(), "十一月订单.csv")
    await callback_answered(wecom, "file")
    boss.say("/orders")
    imported = await told(wecom, boss, "已导入")
    assert "2 个订单" in imported.text

    await complaint_filed(wecom)
    await taken_by(wecom, zhang)
    zhang.say("/cause 产品 供应链")
    await told(wecom, zhang, "记录了 产品缺陷、供应链")

    mark = len(wecom.app_sent)
    boss.say("/stats 7d")
    figures = await told(wecom, boss, "投诉统计", mark)
    assert "共 1 单投诉" in figures.text
    chart = await sent_as(wecom, boss, "image", mark)
    with Image.open(io.BytesIO(wecom.media[chart.media_id or ""].data)) as png:
        assert png.format == "PNG" and png.width >= 800

    mark = len(wecom.app_sent)
    boss.say("/export 30d")
    await told(wecom, boss, "投诉记录", mark)
    xlsx = await sent_as(wecom, boss, "file", mark, ".xlsx")
    table = await sent_as(wecom, boss, "file", mark, ".csv")
    sheet = openpyxl.load_workbook(io.BytesIO(wecom.media[xlsx.media_id or ""].data)).active
    assert sheet is not None
    header, *rows = [[c.value for c in row] for row in sheet.iter_rows()]
    row = dict(zip(header, rows[0], strict=True))
    assert row["投诉单号"] == "T-000001" and row["商品"] == "红玫瑰花束 33 支"
    data = wecom.media[table.media_id or ""].data.decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(data)))[1][0] == "T-000001"

    mark = len(wecom.app_sent)
    boss.say("/ticket T-000001")
    await told(wecom, boss, "T-000001 全程记录", mark)

    li.say("/stats")
    await told(wecom, li, "只有店长可以用")
    for member in (zhang, li):
        got = member.received()
        assert not any("投诉统计" in m.text or "已导入" in m.text for m in got)
        assert not any(m.msgtype in ("image", "file") for m in got)


async def test_a_fact_names_its_ticket_or_asks(wecom: WeComStandIn, start_bot: Any) -> None:
    """`/product …` with no current ticket asks which; `T-000001 /batch …` names it."""
    li = wecom.staff("lisi")
    wecom.staff("zhangsan"), wecom.staff("boss")
    bot = await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    await card_of(wecom, li)
    li.say("/product 红玫瑰")
    await told(wecom, li, "不知道是哪一单")
    li.say("T-000001 /batch B20261120")
    await told(wecom, li, "记录了 B20261120")
    await bot.settled()
    async with bot.app.new_uow(read_only=True) as uow:
        ticket = await uow.tickets.get(1)
    assert ticket is not None and ticket.batch == "B20261120" and not ticket.product


async def test_words_with_no_current_ticket_go_where_the_member_taps(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """A member with no current ticket writes: they are asked which, with their open tickets
    as buttons; the tap makes it current and the words they wrote reach its customer, once."""
    li = wecom.staff("lisi")
    wecom.staff("zhangsan"), wecom.staff("boss")
    bot = await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    await card_of(wecom, li)
    await bot.settled()  # the card is on record as hers (a person reads it before answering)
    mark = len(wecom.app_sent)
    li.say("您好,我们看到了,正在查")
    await told(wecom, li, "要发给哪一单", mark)
    which = await wecom.wait_app_sent(
        lambda m: m.touser == "lisi" and m.card is not None and "T-000001" in m.buttons(),
        timeout=20,
        after=mark,
    )
    mark_customer = len(wecom.sent)
    li.tap(which, key_of(which, "T-000001"))
    await said_to(wecom, "正在查", mark_customer)
    await told(wecom, li, "已发给 T-000001", mark)
    li.tap(which, key_of(which, "T-000001"))  # again: current still, the words not sent twice
    await told(wecom, li, "接下来你发的消息", mark)
    await bot.settled()
    assert sum(1 for s in wecom.sent_to(CUSTOMER) if "正在查" in s.text) == 1
    async with bot.app.new_uow(read_only=True) as uow:
        assert await uow.staff_app.focus("lisi") == 1


async def test_a_members_photo_reaches_the_wechat_customer(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """A photo sent to the app is fetched with media/get and reaches the WeChat customer of
    the member's current ticket, uploaded again as the customer service's media."""
    zhang = wecom.staff("zhangsan")
    wecom.staff("lisi"), wecom.staff("boss")
    await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    await taken_by(wecom, zhang)
    photo = b"\xff\xd8\xff\xe0" + b"a staff photo" * 20
    mark_customer = len(wecom.sent)
    zhang.send_image(photo)
    image = await wecom.wait_sent(
        lambda s: s.touser == CUSTOMER and s.msgtype == "image", timeout=20, after=mark_customer
    )
    media_id = image.body["image"]["media_id"]
    assert wecom.media[media_id].data == photo
    assert any(p == "media/get" for p, _ in wecom.calls)


async def test_a_members_photo_reaches_the_telegram_customer(
    api: Any, wecom: WeComStandIn, start_bot: Any
) -> None:
    """Telegram customers, WeCom staff: a photo sent to the app reaches the customer's chat
    as a photo."""
    from tests.e2e.people import file_complaint, said
    from tests.e2e.test_wecom_staff import start_telegram_with_wecom_staff

    await start_telegram_with_wecom_staff(start_bot, wecom)
    zhang = wecom.staff("zhangsan", "张三")
    wecom.staff("lisi", "李四"), wecom.staff("boss", "陈店长")
    customer = api.person(7602, "小明", "zh")
    await file_complaint(api, customer, photos=(), submit=False)
    customer.tap("✅ 提交")
    await said(api, customer, "投诉单号")
    await taken_by(wecom, zhang)
    mark = len(api.sent)
    zhang.send_image()
    await api.wait_for(
        lambda s: s.chat_id == customer.id and s.kind == "photo", after=mark, timeout=20
    )


async def test_the_clock_pages_the_managers_in_wecom(
    wecom: WeComStandIn, start_bot: Any, database_url: str
) -> None:
    """A safety word in the customer's first message reaches the managers at once, and a
    missed first answer pages them, both by message/send naming the ticket; staff who are not
    managers get neither."""
    zhang, boss = wecom.staff("zhangsan"), wecom.staff("boss")
    wecom.staff("lisi")
    bot = await start_all_wecom(start_bot, wecom)
    await complaint_filed(wecom)
    engine = create_engine(database_url)
    try:  # the first answer is due now: as if ten minutes had passed
        async with engine.begin() as db:
            past = datetime.now(UTC) - timedelta(minutes=1)
            await db.execute(
                update(DeadlineRow).where(DeadlineRow.kind == "first_response").values(due_at=past)
            )
    finally:
        await engine.dispose()
    bot.app.scheduler.poke()
    page = await told(wecom, boss, "还没有人回复")
    assert "T-000001" in page.text

    wecom.customer("wx-other", "小张").say("你好,孩子碰了你们的花以后过敏了,现在在医院")
    alarm = await told(wecom, boss, "重大投诉预警")
    assert "T-000002" in alarm.text and "过敏" in alarm.text
    await bot.settled()
    assert not any("预警" in m.text or "还没有人回复" in m.text for m in zhang.received())


async def test_a_callback_that_keeps_failing_is_told_to_the_member(
    wecom: WeComStandIn, start_bot: Any
) -> None:
    """A member's message the desk fails on, however often it tries (a bug), is set aside and
    the member hears in one line that it went nowhere; others hear nothing."""
    li = wecom.staff("lisi")
    zhang = wecom.staff("zhangsan")
    wecom.staff("boss")
    bot = await start_all_wecom(start_bot, wecom)
    room = bot.app.wecom_staff

    async def broken(uow: Any, fields: dict[str, str]) -> None:
        raise RuntimeError("a bug")

    room.handle = broken
    li.say("T-000001 您好")
    line = await told(wecom, li, "没能处理")
    assert "T-000001 您好" in line.text and "\n" not in line.text.strip()
    await bot.settled()
    assert not any("没能处理" in m.text for m in zhang.received())
    async with bot.app.new_uow(read_only=True) as uow:
        assert await uow.staff_app.pending() == []


async def test_a_manager_imports_orders_from_a_link(wecom: WeComStandIn, start_bot: Any) -> None:
    """WeCom's apps receive no files: `/orders <link>` downloads the shop's export and
    imports it; a link that does not answer is said so, without the link's key."""
    from aiohttp import web

    async def export(request: web.Request) -> web.Response:
        if request.query.get("key") != "k-2231":
            return web.Response(status=403)
        return web.Response(body=("\ufeff" + ORDERS).encode())

    app = web.Application()
    app.router.add_get("/export/orders.csv", export)
    async with serving(app) as url:
        boss = wecom.staff("boss")
        wecom.staff("zhangsan"), wecom.staff("lisi")
        await start_all_wecom(start_bot, wecom)
        boss.say(f"/orders {url}/export/orders.csv?key=wrong")
        refused = await told(wecom, boss, "链接打不开")
        assert "HTTP 403" in refused.text and "wrong" not in refused.text
        boss.say(f"/orders {url}/export/orders.csv?key=k-2231")
        imported = await told(wecom, boss, "已导入")
        assert "2 个订单" in imported.text
