"""`python -m bot demo`: the desk at work, with no token and no network.

It starts the local Bot API stand-in, the bot against it (SQLite in a temporary folder), and
a scripted customer, staff member and manager who file, answer and settle one complaint. The
conversation is printed as it happens, from both sides.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from bot import labels as keyboards
from bot.app import build, serve
from bot.config import load_settings
from bot.policy import load_policy
from bot.standin import BotApiStandIn, Sent
from bot.standin.server import Person
from storage.migrate import migrate

STAFF_CHAT = -1000000000001
MANAGER_ID = 900001

SCRIPT: dict[str, dict[str, str]] = {
    "zh": {
        "customer": "小明",
        "staff": "小王",
        "manager": "陈店长",
        "group": "花店售后群",
        "hello": "你好,我昨天订的生日花束今天送到了,可是花全都蔫了",
        "order": "FS2026112301",
        "story": "打开包装一半的玫瑰都垂下来了,叶子也发黄,今晚就要送人,太着急了",
        "phone": "13800138000",
        "staff_reply": "小明您好,我是小王,看到照片了,真的非常抱歉!我们马上核实,很快给您方案。",
        "customer_reply": "好的,麻烦快一点",
        "tier": "中等",
        "option": "今天下午重做并送达",
        "you": "客户",
        "group_label": "员工群",
        "taps": "点了",
        "card_now": "卡片现在是这样",
        "done": "演示结束:投诉从提交到解决,一共",
    },
    "en": {
        "customer": "Emma",
        "staff": "Sam",
        "manager": "Mr Chen",
        "group": "Shop staff",
        "hello": "Hi, the birthday bouquet I ordered arrived today and the flowers are all wilted",
        "order": "FS2026112301",
        "story": "Half of the roses droop and the leaves are yellow. It's a gift for tonight!",
        "phone": "+8613800138000",
        "staff_reply": "Hello Emma, this is Sam. I've seen the photos and I'm so sorry! "
        "We're checking now and will offer you options shortly.",
        "customer_reply": "OK, please be quick",
        "tier": "Medium",
        "option": "A new bouquet made and delivered this afternoon",
        "you": "customer",
        "group_label": "staff group",
        "taps": "taps",
        "card_now": "The card now reads",
        "done": "End of the demo: complaint filed and resolved in",
    },
}


class Printer:
    """Prints the conversation: who said what, where, and the buttons they saw."""

    def __init__(self, api: BotApiStandIn, lang: str) -> None:
        self.api = api
        self.words = SCRIPT[lang]

    def __call__(self, kind: str, payload: Any) -> None:
        w = self.words
        if kind == "user":
            who = payload["from"]["first_name"]
            where = w["group_label"] if payload["chat"]["id"] == STAFF_CHAT else w["you"]
            body = payload.get("text") or payload.get("caption") or ""
            if "photo" in payload:
                body = f"[📷 {payload['photo'][-1]['file_id']}] {body}"
            if "contact" in payload:
                body = f"[📱 {payload['contact']['phone_number']}]"
            print(f"\n🧑 {who} ({where}): {body}")
        elif kind == "tap":
            label = self._label(payload["message"], payload["data"])
            print(f"\n👆 {payload['person'].first_name} {w['taps']} [{label}]")
        elif kind == "sent":
            self._sent(payload)

    def _sent(self, sent: Sent) -> None:
        w = self.words
        if sent.chat_id == STAFF_CHAT:
            to = w["group_label"]
        else:
            person = self.api.people.get(sent.chat_id)
            to = person.first_name if person else str(sent.chat_id)
        if sent.kind != "text":
            print(f"🤖 → {to}: [{sent.kind} {sent.file_id}] {sent.text}")
            return
        print(f"🤖 → {to}:")
        print(textwrap.indent(sent.text, "   "))
        if sent.buttons():
            print("   " + "  ".join(f"[{b}]" for b in sent.buttons()))

    @staticmethod
    def _label(message: Sent, data: str) -> str:
        for row in (message.reply_markup or {}).get("inline_keyboard", []):
            for button in row:
                if button.get("callback_data") == data:
                    return str(button["text"])
        return data


async def _next(api: BotApiStandIn, person: Person | int, needle: str, mark: int) -> Sent:
    chat = person if isinstance(person, int) else person.id
    return await api.wait_text(chat, needle, timeout=20, after=mark)


async def run_demo(lang: str = "zh", channel: str = "telegram") -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.ERROR)
    w = SCRIPT[lang]
    folder = Path(tempfile.mkdtemp(prefix="desk-demo-"))
    api = BotApiStandIn()
    wecom: Any = None
    try:
        url = await api.start()
        api.add_group(STAFF_CHAT, w["group"])
        extra: dict[str, str] = {}
        if channel == "wechat":
            from bot.standin.wecom import WeComStandIn

            wecom = WeComStandIn()
            extra = {
                "wecom_corp_id": wecom.corp_id,
                "wecom_secret": wecom.secret,
                "wecom_token": wecom.token,
                "wecom_aes_key": wecom.aes_key,
                "wecom_open_kfid": wecom.open_kfid,
                "wecom_api_url": await wecom.start(),
                "wecom_callback_port": "0",
            }
        database = f"sqlite+aiosqlite:///{folder / 'demo.db'}"
        await asyncio.to_thread(migrate, database)
        settings = load_settings(
            bot_token=api.token,
            staff_chat_id=STAFF_CHAT,
            manager_ids=str(MANAGER_ID),
            database_url=database,
            telegram_api_url=url,
            default_language=lang,
            album_window="1s",
            _env_file=None,
            **extra,
        )
        policy = load_policy(settings.shop_policy)
        app = build(settings, policy)
        desk = asyncio.create_task(serve(app, signals=False))
        api.listeners.append(Printer(api, lang))
        started = asyncio.get_running_loop().time()
        try:
            if wecom is not None:
                await api.wait_calls("getUpdates", 1, timeout=60)  # started: its port is known
                wecom.set_callback(f"http://127.0.0.1:{app.wecom.port}/wecom/callback")
                await _wechat_script(api, wecom, lang, policy)
            else:
                await _script(api, lang, policy)
        finally:
            app.poller.stop()
            await desk
        took = asyncio.get_running_loop().time() - started
        print(f"\n✅ {w['done']} {took:.1f} s.")
        return 0
    finally:
        if wecom is not None:
            await wecom.stop()
        await api.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _script(api: BotApiStandIn, lang: str, policy: Any) -> None:
    w = SCRIPT[lang]
    code = "zh" if lang == "zh" else "en"
    customer = api.person(100001, w["customer"], code)
    staff = api.person(100002, w["staff"], code)
    manager = api.person(MANAGER_ID, w["manager"], code)
    label = keyboards.LABELS[lang]
    quality = next(c for c in policy.intake.categories if c.key == "quality").label.in_(lang)

    mark = len(api.sent)
    customer.send(w["hello"])
    question = await _next(api, customer, "", mark)
    if quality in question.buttons():
        mark = len(api.sent)
        customer.tap(quality)
        await _next(api, customer, "", mark)
    mark = len(api.sent)
    customer.send(w["order"])
    await _next(api, customer, "", mark)
    mark = len(api.sent)
    customer.send(w["story"])
    await _next(api, customer, "", mark)
    mark = len(api.sent)
    customer.send_album(["photo-wilted-1", "photo-wilted-2"])
    await api.wait_for(
        lambda s: s.chat_id == customer.id and label["photos_done"] in s.buttons(),
        timeout=20,
        after=mark,
    )
    mark = len(api.sent)
    customer.tap(label["photos_done"])
    await _next(api, customer, "", mark)
    mark = len(api.sent)
    customer.share_contact(w["phone"])
    await api.wait_for(
        lambda s: s.chat_id == customer.id and label["submit"] in s.buttons(),
        timeout=20,
        after=mark,
    )
    mark = len(api.sent)
    customer.tap(label["submit"])
    card = await api.wait_for(
        lambda s: s.chat_id == STAFF_CHAT and s.buttons() != [], timeout=20, after=mark
    )
    await api.wait_for(lambda s: s.chat_id == STAFF_CHAT and s.kind == "photo", 20, mark)
    await asyncio.sleep(0.3)

    mark = len(api.sent)
    staff.say_in_group(STAFF_CHAT, w["staff_reply"], reply_to=card.message_id)
    await _next(api, customer, "", mark)
    mark = len(api.sent)
    customer.send(w["customer_reply"])
    await _next(api, STAFF_CHAT, w["customer_reply"], mark)

    mark = len(api.sent)
    tier = label["tier"].format(label=w["tier"])
    manager.tap(tier, chat_id=STAFF_CHAT)
    await api.wait_for(
        lambda s: s.chat_id == customer.id and w["option"] in s.buttons(), timeout=20, after=mark
    )
    mark = len(api.sent)
    customer.tap(w["option"])
    await api.wait_for(
        lambda s: s.chat_id == STAFF_CHAT and label["done"] in s.buttons(), timeout=20, after=mark
    )
    mark = len(api.sent)
    staff.tap(label["done"], chat_id=STAFF_CHAT)
    await _next(api, customer, "", mark)
    await asyncio.sleep(0.5)
    print(f"\n📋 {w['card_now']}:")
    print(textwrap.indent(card.text, "   "))


async def _wechat_script(api: BotApiStandIn, wecom: Any, lang: str, policy: Any) -> None:
    """The same complaint from an ordinary WeChat user (through WeCom customer service); the
    staff side is the same Telegram group."""
    w = SCRIPT[lang]
    code = "zh" if lang == "zh" else "en"
    who = "wmDEMOwechat000001"
    customer = wecom.customer(who, w["customer"])
    staff = api.person(100002, w["staff"], code)
    manager = api.person(MANAGER_ID, w["manager"], code)
    label = keyboards.LABELS[lang]
    shown = 0

    def show_wechat() -> None:
        nonlocal shown
        for sent in wecom.sent[shown:]:
            if sent.touser != who:
                continue
            print(f"🤖 → {w['customer']} (WeChat):")
            print(
                textwrap.indent(sent.text if not sent.menu else sent.menu["head_content"], "   ")
            )
            if sent.menu:
                print("   " + "  ".join(f"[{b}]" for b in sent.buttons()))
        shown = len(wecom.sent)

    async def next_wechat(mark: int, menu: str | None = None) -> Any:
        sent = await wecom.wait_sent(
            lambda s: s.touser == who and (menu is None or menu in s.buttons()),
            timeout=20,
            after=mark,
        )
        show_wechat()
        return sent

    def says(text: str) -> int:
        print(f"\n🧑 {w['customer']} (WeChat): {text}")
        mark = len(wecom.sent)
        customer.say(text)
        return mark

    def taps(item: str) -> int:
        print(f"\n👆 {w['customer']} {w['taps']} [{item}]")
        mark = len(wecom.sent)
        customer.tap(item)
        return mark

    first = await next_wechat(says(w["hello"]))
    if first.menu and any(c.label.in_(lang) in first.buttons() for c in policy.intake.categories):
        quality = next(c for c in policy.intake.categories if c.key == "quality")
        await next_wechat(taps(quality.label.in_(lang)))
    await next_wechat(says(w["order"]))
    await next_wechat(says(w["story"]))
    print(f"\n🧑 {w['customer']} (WeChat): [📷 photo]")
    mark = len(wecom.sent)
    customer.send_image(wecom.add_media(b"\xff\xd8 a wilted bouquet", kind="image"))
    await next_wechat(mark, label["photos_done"])
    await next_wechat(taps(label["photos_done"]))
    await next_wechat(says(w["phone"]), label["submit"])
    mark = len(api.sent)
    await next_wechat(taps(label["submit"]))
    card = await api.wait_for(
        lambda s: s.chat_id == STAFF_CHAT and s.buttons() != [], timeout=20, after=mark
    )
    await api.wait_for(lambda s: s.chat_id == STAFF_CHAT and s.kind == "photo", 20, mark)
    mark = len(wecom.sent)
    staff.say_in_group(STAFF_CHAT, w["staff_reply"], reply_to=card.message_id)
    await next_wechat(mark)
    mark = len(api.sent)
    wmark = says(w["customer_reply"])
    await _next(api, STAFF_CHAT, w["customer_reply"], mark)
    tier = label["tier"].format(label=w["tier"])
    manager.tap(tier, chat_id=STAFF_CHAT)
    await next_wechat(wmark, w["option"])
    mark = len(api.sent)
    await next_wechat(taps(w["option"]))
    await api.wait_for(
        lambda s: s.chat_id == STAFF_CHAT and label["done"] in s.buttons(), timeout=20, after=mark
    )
    mark = len(wecom.sent)
    staff.tap(label["done"], chat_id=STAFF_CHAT)
    await next_wechat(mark)
    await asyncio.sleep(0.5)
    print(f"\n📋 {w['card_now']}:")
    print(textwrap.indent(card.text, "   "))
