"""`python -m bot demo`: the desk at work, with no token and no network.

It starts the local Bot API stand-in, the bot against it (SQLite in a temporary folder), and
a scripted customer, staff member and manager who file, answer and settle one complaint. The
conversation is printed as it happens, from both sides.

`--channel wechat --staff wecom`: an all-WeCom shop, with no Telegram at all. The WeCom stand-in
plays WeChat customer service (the customer) and the shop's self-built app (two staff members
and a manager, each in their 1:1 chat with the app).
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
        "staff2": "小李",
        "app": "企业微信应用",
        "card_update": "卡片更新",
        "greyed": "按钮已变灰",
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
        "staff2": "Lee",
        "app": "WeCom app",
        "card_update": "card updated",
        "greyed": "buttons greyed out",
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
            await wecom.start()
            extra = wecom.customer_service_settings()
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
            **{"http_port": 0, **extra},  # any free port: the demo runs beside whatever else
        )
        policy = load_policy(settings.shop_policy)
        app = build(settings, policy)
        desk = asyncio.create_task(serve(app, signals=False))
        api.listeners.append(Printer(api, lang))
        started = asyncio.get_running_loop().time()
        try:
            if wecom is not None:
                await api.wait_calls("getUpdates", 1, timeout=60)  # started: its port is known
                wecom.set_callback(f"http://127.0.0.1:{app.callback_port()}/wecom/callback")
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


class WeChatCustomer:
    """A scripted WeChat customer (through the WeCom stand-in): what they say and tap is printed,
    and so is every message the desk sends them."""

    def __init__(self, wecom: Any, who: str, name: str, lang: str) -> None:
        self.wecom = wecom
        self.who = who
        self.name = name
        self.words = SCRIPT[lang]
        self.person = wecom.customer(who, name)
        self.shown = 0

    def show(self) -> None:
        for sent in self.wecom.sent[self.shown :]:
            if sent.touser != self.who:
                continue
            print(f"🤖 → {self.name} (WeChat):")
            text = sent.text if not sent.menu else sent.menu["head_content"]
            print(textwrap.indent(text, "   "))
            if sent.menu:
                print("   " + "  ".join(f"[{b}]" for b in sent.buttons()))
        self.shown = len(self.wecom.sent)

    async def next(self, mark: int, menu: str | None = None) -> Any:
        """The next message to the customer after `mark` (one offering `menu`, if given)."""
        sent = await self.wecom.wait_sent(
            lambda s: s.touser == self.who and (menu is None or menu in s.buttons()),
            timeout=20,
            after=mark,
        )
        self.show()
        return sent

    def says(self, text: str) -> int:
        print(f"\n🧑 {self.name} (WeChat): {text}")
        mark = len(self.wecom.sent)
        self.person.say(text)
        return mark

    def taps(self, item: str) -> int:
        print(f"\n👆 {self.name} {self.words['taps']} [{item}]")
        mark = len(self.wecom.sent)
        self.person.tap(item)
        return mark

    async def files_complaint(self, lang: str, policy: Any) -> None:
        """Through the intake, with a photo, up to the summary's submit (not tapped)."""
        w = self.words
        label = keyboards.LABELS[lang]
        first = await self.next(self.says(w["hello"]))
        categories = [c.label.in_(lang) for c in policy.intake.categories]
        if first.menu and any(c in first.buttons() for c in categories):
            quality = next(c for c in policy.intake.categories if c.key == "quality")
            await self.next(self.taps(quality.label.in_(lang)))
        await self.next(self.says(w["order"]))
        await self.next(self.says(w["story"]))
        print(f"\n🧑 {self.name} (WeChat): [📷 photo]")
        mark = len(self.wecom.sent)
        self.person.send_image(self.wecom.add_media(b"\xff\xd8 a wilted bouquet", kind="image"))
        await self.next(mark, label["photos_done"])
        await self.next(self.taps(label["photos_done"]))
        await self.next(self.says(w["phone"]), label["submit"])


async def _wechat_script(api: BotApiStandIn, wecom: Any, lang: str, policy: Any) -> None:
    """The same complaint from an ordinary WeChat user (through WeCom customer service); the
    staff side is the same Telegram group."""
    w = SCRIPT[lang]
    code = "zh" if lang == "zh" else "en"
    customer = WeChatCustomer(wecom, "wmDEMOwechat000001", w["customer"], lang)
    staff = api.person(100002, w["staff"], code)
    manager = api.person(MANAGER_ID, w["manager"], code)
    label = keyboards.LABELS[lang]

    await customer.files_complaint(lang, policy)
    mark = len(api.sent)
    await customer.next(customer.taps(label["submit"]))
    card = await api.wait_for(
        lambda s: s.chat_id == STAFF_CHAT and s.buttons() != [], timeout=20, after=mark
    )
    await api.wait_for(lambda s: s.chat_id == STAFF_CHAT and s.kind == "photo", 20, mark)
    mark = len(wecom.sent)
    staff.say_in_group(STAFF_CHAT, w["staff_reply"], reply_to=card.message_id)
    await customer.next(mark)
    mark = len(api.sent)
    wmark = customer.says(w["customer_reply"])
    await _next(api, STAFF_CHAT, w["customer_reply"], mark)
    tier = label["tier"].format(label=w["tier"])
    manager.tap(tier, chat_id=STAFF_CHAT)
    await customer.next(wmark, w["option"])
    mark = len(api.sent)
    await customer.next(customer.taps(w["option"]))
    await api.wait_for(
        lambda s: s.chat_id == STAFF_CHAT and label["done"] in s.buttons(), timeout=20, after=mark
    )
    mark = len(wecom.sent)
    staff.tap(label["done"], chat_id=STAFF_CHAT)
    await customer.next(mark)
    await asyncio.sleep(0.5)
    print(f"\n📋 {w['card_now']}:")
    print(textwrap.indent(card.text, "   "))


STAFF_USERIDS = ("xiaowang", "xiaoli")  # WeCom userids (通讯录), as the desk names people
MANAGER_USERID = "chendianzhang"


class AppPrinter:
    """Prints what the shop's WeCom app delivered to its members, each send once with the
    people it reached (one message/send to several members is one line), and each card that an
    update changed since it was last shown."""

    def __init__(self, wecom: Any, lang: str) -> None:
        self.wecom = wecom
        self.words = SCRIPT[lang]
        self.shown = 0
        self.updates: dict[int, int] = {}  # id of a card's AppMessage -> updates shown

    def name(self, userid: str) -> str:
        member = self.wecom.staff_members.get(userid.lower())
        return str(member.name) if member else userid

    def show(self) -> None:
        w = self.words
        fresh = self.wecom.app_sent[self.shown :]
        self.shown = len(self.wecom.app_sent)
        changed: dict[tuple[str, str], list[str]] = {}
        for message in self.wecom.app_sent[: self.shown - len(fresh)]:
            if message.card is not None and message.updates > self.updates.get(id(message), 0):
                self.updates[id(message)] = message.updates
                if message.replaced_name:
                    shown = f"{w['greyed']}: {message.replaced_name}"
                else:  # a new card in its place: its line under the title, and its buttons
                    desc = (message.card.get("main_title") or {}).get("desc") or ""
                    buttons = "  ".join(f"[{b}]" for b in message.buttons())
                    shown = f"{desc}\n{buttons}".strip()
                changed.setdefault((message.title, shown), []).append(self.name(message.touser))
        for (title, shown), people in changed.items():
            print(f"🔄 {w['card_update']} → {', '.join(people)} ({w['app']}): {title}")
            print(textwrap.indent(shown, "   "))
        by_send: dict[str, list[Any]] = {}
        for message in fresh:
            by_send.setdefault(message.msgid, []).append(message)
        for group in by_send.values():
            for message in group:
                self.updates[id(message)] = message.updates
            people = ", ".join(self.name(m.touser) for m in group)
            self.print(group[0], f"🤖 → {people} ({self.words['app']})")

    def print(self, message: Any, to: str) -> None:
        """One message as its members see it, under the line `to`."""
        if message.card is None and message.msgtype != "text":
            print(f"{to}: [{message.msgtype} {message.media_id}]")
            return
        print(f"{to}:")
        if message.card is None:
            print(textwrap.indent(message.text, "   "))
            return
        card = message.card
        print(f"   ▌{message.title}")
        desc = (card.get("main_title") or {}).get("desc")
        if desc:
            print(textwrap.indent(str(desc), "   "))
        for row in card.get("horizontal_content_list") or []:
            print(f"   {row.get('keyname')}: {row.get('value')}")
        print("   " + "  ".join(f"[{b}]" for b in message.buttons()))


async def run_all_wecom(lang: str = "zh") -> int:
    """A WeChat customer, staff and a manager in the shop's WeCom app: no Telegram at all."""
    logging.basicConfig(level=logging.WARNING)
    from bot.standin.wecom import WeComStandIn

    w = SCRIPT[lang]
    folder = Path(tempfile.mkdtemp(prefix="desk-demo-"))
    wecom = WeComStandIn()
    try:
        database = f"sqlite+aiosqlite:///{folder / 'demo.db'}"
        await asyncio.to_thread(migrate, database)
        await wecom.start()
        settings = load_settings(
            bot_token=None,  # no Telegram, whatever the environment says
            database_url=database,
            default_language=lang,
            **{
                **wecom.customer_service_settings(),
                **wecom.app_settings(list(STAFF_USERIDS), [MANAGER_USERID]),
            },
            _env_file=None,
        )
        policy = load_policy(settings.shop_policy)
        app = build(settings, policy)
        desk = asyncio.create_task(serve(app, signals=False))
        started = asyncio.get_running_loop().time()
        try:
            ready = asyncio.create_task(app.started.wait())
            await asyncio.wait({desk, ready}, return_when=asyncio.FIRST_COMPLETED)
            if desk.done():  # it stopped before it served: say why
                ready.cancel()
                desk.result()
            port = app.callback_port()
            wecom.set_callback(f"http://127.0.0.1:{port}/wecom/callback")
            wecom.set_app_callback(f"http://127.0.0.1:{port}/wecom/app")
            await _all_wecom_script(wecom, lang, policy)
        finally:
            app.stop()
            await desk
        took = asyncio.get_running_loop().time() - started
        print(f"\n✅ {w['done']} {took:.1f} s.")
        return 0
    finally:
        await wecom.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _all_wecom_script(wecom: Any, lang: str, policy: Any) -> None:
    """The WeChat customer files the complaint; its card reaches both staff and the manager in
    the app; one takes it (everyone's card shows who), answers from the 1:1 chat, the manager
    taps a tier on the card, the customer chooses, and the one on the ticket resolves it."""
    w = SCRIPT[lang]
    label = keyboards.LABELS[lang]
    wang = wecom.staff(STAFF_USERIDS[0], w["staff"])
    wecom.staff(STAFF_USERIDS[1], w["staff2"])
    boss = wecom.staff(MANAGER_USERID, w["manager"])
    app = AppPrinter(wecom, lang)
    customer = WeChatCustomer(wecom, "wmDEMOwechat000001", w["customer"], lang)

    def key_of(card: Any, text: str) -> str:
        return next(b["key"] for b in card.card["button_list"] if b["text"] == text)

    def card_for(member: Any, mark: int = 0, button: str | None = None) -> Any:
        return wecom.wait_app_sent(
            lambda m: (
                m.touser == member.userid
                and m.card is not None
                and (button is None or button in m.buttons())
            ),
            timeout=20,
            after=mark,
        )

    async def staff_told(member: Any, mark: int) -> None:
        await wecom.wait_app_sent(
            lambda m: m.touser == member.userid and m.msgtype == "text", timeout=20, after=mark
        )

    def taps(member: Any, card: Any, text: str) -> int:
        print(f"\n👆 {member.name} {w['taps']} [{text}] ({w['app']})")
        mark = len(wecom.app_sent)
        member.tap(card, key_of(card, text))
        return mark

    await customer.files_complaint(lang, policy)
    mark = len(wecom.app_sent)
    await customer.next(customer.taps(label["submit"]))
    card = await card_for(wang, mark)
    tier = label["tier"].format(label=w["tier"])
    manager_card = await card_for(boss, mark, tier)
    await wecom.wait_app_sent(lambda m: m.msgtype == "image", timeout=20, after=mark)  # photo
    app.show()

    await staff_told(wang, taps(wang, card, label["take"]))
    await wecom.until(lambda: wecom.member_card(boss.userid, manager_card.task_id).updates > 0)
    app.show()

    print(f"\n🧑 {wang.name} ({w['app']}): {w['staff_reply']}")
    mark, app_mark = len(wecom.sent), len(wecom.app_sent)
    wang.say(w["staff_reply"])
    await customer.next(mark)
    await staff_told(wang, app_mark)
    app.show()

    app_mark = len(wecom.app_sent)
    wmark = customer.says(w["customer_reply"])
    await wecom.wait_app_sent(
        lambda m: m.touser == wang.userid and w["customer_reply"] in m.text,
        timeout=20,
        after=app_mark,
    )
    customer.show()
    app.show()

    manager_card = wecom.member_card(boss.userid, manager_card.task_id)
    taps(boss, manager_card, tier)
    await customer.next(wmark, w["option"])
    app.show()

    mark = len(wecom.app_sent)
    await customer.next(customer.taps(w["option"]))
    done = await card_for(wang, mark, label["done"])
    app.show()

    mark = len(wecom.sent)
    taps(wang, done, label["done"])
    await customer.next(mark)
    await asyncio.sleep(0.5)
    app.show()
    app.print(
        wecom.member_card(boss.userid, manager_card.task_id),
        f"\n📋 {w['card_now']} ({w['manager']}, {w['app']})",
    )
