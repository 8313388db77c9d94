"""How the tests' people act through the stand-in: what they do and what they wait to see."""

from __future__ import annotations

from typing import Any

from bot.standin import BotApiStandIn, Person, Sent
from bot.standin.wecom import WeComStandIn
from tests.conftest import STAFF_CHAT


async def said(
    api: BotApiStandIn, person: Person, needle: str, mark: int = 0, timeout: float = 15
) -> Sent:
    """The bot's message to this person containing `needle` (sent from index `mark` on)."""
    return await api.wait_text(person.id, needle, timeout=timeout, after=mark)


async def in_group(api: BotApiStandIn, needle: str, mark: int = 0, timeout: float = 15) -> Sent:
    return await api.wait_text(STAFF_CHAT, needle, timeout=timeout, after=mark)


async def file_complaint(
    api: BotApiStandIn,
    customer: Person,
    *,
    category: str = "花材质量",
    order: str = "FS2026112301",
    story: str = "花送到的时候一半都蔫了,叶子也黄了",
    photos: tuple[str, ...] = ("photo-a", "photo-b"),
    phone: str | None = "13800138000",
    submit: bool = True,
) -> Sent:
    """A Chinese-speaking customer goes through the whole intake and submits; returns the card
    (with `submit=False`: stops at the summary and returns it)."""
    mark = len(api.sent)
    customer.send("你好")
    await said(api, customer, "哪一类问题", mark)
    mark = len(api.sent)
    customer.tap(category)
    await said(api, customer, "订单号", mark)
    mark = len(api.sent)
    customer.send(order)
    await said(api, customer, "发生了什么", mark)
    mark = len(api.sent)
    customer.send(story)
    await said(api, customer, "照片", mark)
    mark = len(api.sent)
    if photos:
        customer.send_album(list(photos)) if len(photos) > 1 else customer.send_photo(photos[0])
        await said(api, customer, f"已经收到 {len(photos)} 张照片", mark)
        mark = len(api.sent)
        customer.tap("✅ 照片发完了")
    else:
        customer.tap("没有照片,跳过")
    await said(api, customer, "怎么联系您", mark)
    mark = len(api.sent)
    if phone:
        customer.share_contact(phone)
    else:
        customer.send("跳过,就在这里联系我")
    summary = await said(api, customer, "请您核对", mark)
    if not submit:
        return summary
    mark = len(api.sent)
    customer.tap("✅ 提交")
    await said(api, customer, "投诉单号", mark)
    card = await in_group(api, "投诉单", mark)
    if photos:  # staff see the card with its photos before they answer
        await api.wait_for(lambda s: s.chat_id == STAFF_CHAT and s.kind == "photo", after=mark)
    return card


async def start_wechat_desk(start_bot: Any, wecom: WeComStandIn, **settings: str) -> Any:
    """The desk with WeChat customers on (through the WeCom stand-in); the stand-in calls it
    back once told its callback URL (`wecom.set_callback(callback_url(bot))`)."""
    return await start_bot(**{**wecom.customer_service_settings(), **settings})


def callback_url(bot: Any) -> str:
    return f"http://127.0.0.1:{bot.app.callback_port()}/wecom/callback"
