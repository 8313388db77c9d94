"""The staff room on WeCom (STAFF_ROOM=wecom): the shop's self-built app (自建应用) talks to each
member in a 1:1 chat. A new ticket's card reaches every member as a `button_interaction`
template_card (managers' with the remedy tiers), its full text as text and its photos as
images; a ticket's thread reaches whoever took it (everyone who got the card while nobody has);
alerts reach the managers; a word meant for one person reaches that person only.

The app's callback (a member's message or tap) is checked before it is parsed, stored once
(by MsgId, or the member and CreateTime of an event) before it is answered `success`, and
handled in the member's lane like a Telegram update: a tap is the same tap on the same key, a
message is a typed action, a reply to the member's current ticket, or the desk asks which."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from aiohttp import web

from bot.channels.base import Delivery, Outcome, Passing, Refresh
from bot.channels.wecom.app_client import AppClient, SendResult, WeComIpNotTrusted
from bot.channels.wecom.client import WeComError, WeComUnavailable
from bot.channels.wecom.crypto import CryptoError, WeComCrypto
from bot.channels.wecom.pace import MemberPace
from bot.channels.wecom.text import TEXT_BYTES, cut_bytes, plain_text, split_bytes
from bot.config import Settings
from bot.domain.messages import Attachment, Choice, Outgoing, Say, StaffSaid, Urgency
from bot.domain.tickets import Actor, Ticket
from bot.durable import ORPHAN_AFTER, take_over, until_done
from bot.labels import label
from bot.lanes import Job, Lanes
from bot.metrics import Metrics
from bot.shared import Shared
from handlers import common, staff
from handlers import manager as manager_cases
from handlers.context import Desk
from storage.db import passing
from storage.outbox import CARD, CARD_EDIT, CLEAR, RELAY
from storage.uow import NewUnitOfWork, UnitOfWork

logger = logging.getLogger(__name__)

CHANNEL = "wecom_app"  # the channel of a file a member sent (media/get)
MOST_BUTTONS = 6
PASSING_ERRORS = {-1, 45009, 45033}
WHICH = "w:"  # the app's own key: "this message (w:<ticket>:<MsgId>) is for that ticket"
ORDERS_FILE_WITHIN = timedelta(hours=1)  # /orders imports the file a manager sent this recently
CARD_RESERVE = 2  # places in a member's minute a card leaves for its digest and for relays
DIGEST_MOST = 25  # tickets one digest lists
IP_WARN_EVERY = 60.0  # seconds between two log lines about the trusted IPs (60020)
RELAY_PACE = 4.0  # a ticket's customer texts go at most this often; what comes meanwhile merges

Fetch = Callable[[Attachment], Awaitable[bytes]]


def _passing(exc: BaseException) -> bool:
    if isinstance(exc, WeComIpNotTrusted):  # waits until the shop adds the address
        return True
    if isinstance(exc, WeComError):
        return exc.errcode in PASSING_ERRORS
    return isinstance(exc, WeComUnavailable | Passing) or passing(exc)


class WeComStaff:
    """The `StaffRoom` on WeCom, and the app's callback."""

    def __init__(
        self,
        settings: Settings,
        fetch: Fetch,
        shared: Shared | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`shared`: what several instances share (the members' windows), where there are."""
        assert settings.wecom_corp_id and settings.wecom_agent_id is not None
        assert settings.wecom_app_secret and settings.wecom_app_token
        assert settings.wecom_app_aes_key
        self.settings = settings
        self.fetch = fetch
        self.metrics = metrics or Metrics()
        self.client = AppClient(
            settings.wecom_api_url,
            settings.wecom_corp_id,
            settings.wecom_agent_id,
            settings.wecom_app_secret.get_secret_value(),
            self.metrics,
        )
        self.crypto = WeComCrypto(
            settings.wecom_app_token.get_secret_value(),
            settings.wecom_app_aes_key.get_secret_value(),
            settings.wecom_corp_id,
        )
        self.managers = list(dict.fromkeys(settings.wecom_manager_ids))
        self.staff = [u for u in dict.fromkeys(settings.wecom_staff_ids) if u not in self.managers]
        self.members = [*self.staff, *self.managers]
        self._lower = {u.lower(): u for u in self.members}
        # WeCom's 30 a minute and 1000 an hour, member by member (for all the instances)
        self.pace = MemberPace(windows=shared.windows if shared is not None else None)
        self._announced: dict[str, dict[int, Ticket]] = {}  # per member: cards to announce
        self._listed: dict[str, set[int]] = {}  # per member: announced, the card to follow
        self._cards_waiting: dict[str, int] = {}  # per member: cards waiting for a place
        self._digest_locks: dict[str, asyncio.Lock] = {}
        self._last_relay: dict[str, float] = {}  # per lane, when its last merged relay went
        self._ip_warned: float | None = None  # when the 60020 line was last logged
        self._stopping = asyncio.Event()
        self._sweeping: asyncio.Task[None] | None = None
        self._in_hand: set[str] = set()  # callbacks submitted to a lane, not done yet
        self.several = False

    def connect(
        self,
        desk: Desk,
        new_uow: NewUnitOfWork,
        lanes: Lanes,
        clock: Callable[[], datetime],
        several: bool = False,
    ) -> None:
        """`several`: other instances share the database; callbacks one of them stored and
        left unhandled (it died) are taken over here."""
        self.desk = desk
        self.new_uow = new_uow
        self.lanes = lanes
        self.clock = clock
        self.several = several

    def people(self) -> list[Actor]:
        """The managers, as the desk mentions them: by the names learnt at start (no call to
        WeCom here: the desk asks this inside its units of work)."""
        return [Actor(u, self.client.known_name(u) or u, "manager") for u in self.managers]

    def actor(self, userid: str) -> Actor | None:
        known = self._lower.get(userid.lower())
        if known is None:
            return None
        return Actor(known, known, "manager" if known in self.managers else "staff")

    async def named(self, actor: Actor | None) -> Actor | None:
        """The member with the name WeCom knows them by (user/get), so that a customer reads
        "张三", not "zhangsan"; the userid when WeCom does not answer."""
        if actor is None:
            return None
        try:
            name = await self.client.user_name(actor.id)
        except WeComIpNotTrusted as exc:
            self._ip_not_trusted(exc)
            name = None
        except (WeComError, WeComUnavailable) as exc:
            logger.info("No name for %s from WeCom: %s", actor.id, exc)
            name = None
        return Actor(actor.id, name, actor.role) if name else actor

    async def fetch_media(self, attachment: Attachment) -> bytes:
        """A photo a member sent, for the customer."""
        return await self.client.get_media(attachment.ref)

    # -- the callback server ---------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        path = self.settings.wecom_app_callback_path
        app.router.add_get(path, self._verify)
        app.router.add_post(path, self._callback)

    async def start(self) -> None:
        """Learn the managers' names and recover what a stop left (the callbacks are served by
        the instance's server)."""
        logger.info("WeCom app callbacks at %s", self.settings.wecom_app_callback_path)
        try:  # the managers' names for the first mentions; a slow answer holds nothing up
            await asyncio.wait_for(
                asyncio.gather(*(self.named(self.actor(u)) for u in self.managers)), timeout=10
            )
        except TimeoutError:
            logger.warning("WeCom did not say the managers' names in time; asking again later")
        await self.recover()
        if self.several:
            self._sweeping = asyncio.create_task(
                take_over(self._stopping, self._orphans, "app callbacks")
            )

    async def stop(self) -> None:
        self._stopping.set()
        if self._sweeping is not None:
            self._sweeping.cancel()
            await asyncio.gather(self._sweeping, return_exceptions=True)
        with contextlib.suppress(TimeoutError):  # a stop ends in time, Redis or not
            await asyncio.wait_for(self.pace.settle(), timeout=2)
        await self.client.close()

    async def recover(self) -> None:
        async with self.new_uow(read_only=True) as uow:
            rows = [(r.key, json.loads(r.payload)) for r in await uow.staff_app.pending()]
        for key, fields in rows:
            self._submit(key, fields)

    async def _verify(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        try:
            echo = self.crypto.answer_url_check(
                q.get("msg_signature", ""),
                q.get("timestamp", ""),
                q.get("nonce", ""),
                q.get("echostr", "").replace(" ", "+"),
                self.clock().timestamp(),
            )
        except CryptoError as exc:
            logger.warning("WeCom app URL check refused: %s", exc)
            return web.Response(status=403, text="forbidden")
        return web.Response(text=echo)

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        """Checked (signed, and now) before anything is parsed; stored once; then `success`."""
        q = request.query
        body = await request.read()
        try:
            event = self.crypto.open_callback(
                q.get("msg_signature", ""),
                q.get("timestamp", ""),
                q.get("nonce", ""),
                body,
                self.clock().timestamp(),
            )
        except CryptoError as exc:
            logger.warning("An app callback that is not WeCom's was refused: %s", exc)
            return web.Response(status=403, text="forbidden")
        fields = {child.tag: (child.text or "") for child in event}
        user = fields.get("FromUserName", "")
        key = fields.get("MsgId") or f"{user}:{fields.get('CreateTime', '')}"
        async with self.new_uow() as uow:
            fresh = await uow.staff_app.put_callback(
                key, user, json.dumps(fields, ensure_ascii=False), self.clock()
            )
            await uow.commit()
        if fresh:
            self._submit(key, fields)
        return web.Response(text="success")

    async def _orphans(self) -> None:
        """Callbacks stored a while ago and still not handled, not in hand here: handed on."""
        before = self.clock() - ORPHAN_AFTER
        async with self.new_uow(read_only=True) as uow:
            rows = [
                (r.key, json.loads(r.payload))
                for r in await uow.staff_app.pending()
                if r.received_at.replace(tzinfo=before.tzinfo) < before
            ]
        for key, fields in rows:
            if key not in self._in_hand:
                self._submit(key, fields)

    def _submit(self, key: str, fields: dict[str, str]) -> None:
        self._in_hand.add(key)
        self.lanes.submit(f"{CHANNEL}:{fields.get('FromUserName', '')}", self._job(key, fields))

    def _job(self, key: str, fields: dict[str, str]) -> Job:
        async def job() -> None:
            prepared: list[manager_cases.Finish | None] = []

            async def attempt() -> None:
                if not prepared:  # an insight command's reading, drawing, import: done once
                    prepared.append(await self.prepare(fields))
                async with self.new_uow() as uow:
                    if prepared[0] is not None:  # what the insight command made, written now
                        await prepared[0](uow)
                    else:
                        await self.handle(uow, fields)
                    if not await uow.staff_app.mark_handled(key, self.clock()):
                        return  # another instance handled it: this is undone
                    await uow.commit()
                self.metrics.handled(CHANNEL)

            async def set_aside(exc: Exception) -> None:
                async with self.new_uow() as uow:
                    if not await uow.staff_app.mark_handled(key, self.clock(), repr(exc)[:2000]):
                        return  # handled elsewhere after all
                    actor = self.actor(fields.get("FromUserName", ""))
                    if actor is not None:  # they hear, in one line, that it went nowhere
                        text = fields.get("Content", "") if fields.get("MsgType") == "text" else ""
                        staff.not_handled(uow, self.desk, actor.name, text, to=actor)
                    await uow.commit()
                self.metrics.handled(CHANNEL)

            try:
                await until_done(
                    attempt,
                    what=f"WeCom app callback {key}",
                    passing=_passing,
                    set_aside=set_aside,
                    stopped=self._stopping,
                )
            finally:
                self._in_hand.discard(key)

        return job

    # -- insight: what a manager's command does before its unit of work --------------------

    def _insight(self, fields: dict[str, str]) -> tuple[str, str] | None:
        """An insight command typed to the app (`/stats 7d`): the command and what follows."""
        if fields.get("MsgType") != "text":
            return None
        head, _, args = fields.get("Content", "").strip().replace("\n", " ").partition(" ")
        command = head.lower()
        return (command, args) if command in manager_cases.INSIGHT_COMMANDS else None

    async def prepare(self, fields: dict[str, str]) -> manager_cases.Finish | None:
        """As the Telegram router's `prepare`: the figures read and drawn (read-only), the
        orders file fetched (media/get) and imported in short transactions of its own, before
        the callback's unit of work, which then writes what this returns. Answered to the
        asker only; None for anything that is no insight command."""
        found = self._insight(fields)
        actor = self.actor(fields.get("FromUserName", ""))
        if found is None or actor is None:
            return None
        command, args = found
        if actor.role != "manager":
            return manager_cases.refused(self.desk, actor, command)
        now = self.clock()
        if command == "/orders":
            link = next((w for w in args.split() if w.startswith(("https://", "http://"))), "")
            try:
                name, data = await _download(link) if link else await self._orders_file(actor, now)
            except OrdersUnreachable as exc:
                return self._said(actor, "staff/orders_unreachable.txt", why=str(exc))
            if data is None:
                return self._said(actor, "staff/orders_send_file.txt")
            return await manager_cases.orders_received(
                self.new_uow, self.desk, actor, name, data, now
            )
        async with self.new_uow(read_only=True) as reading:
            if command == "/stats":
                return await manager_cases.stats(reading, self.desk, actor, args, now)
            if command == "/export":
                return await manager_cases.export(reading, self.desk, actor, args, now)
            return await manager_cases.ticket_record(reading, self.desk, actor, args)

    async def _orders_file(self, actor: Actor, now: datetime) -> tuple[str, bytes | None]:
        """The rule: `/orders` imports the last file the manager sent to the app within the
        past hour (fetched with media/get)."""
        async with self.new_uow(read_only=True) as uow:
            recent = await uow.staff_app.recent_of(actor.id, now - ORDERS_FILE_WITHIN)
        for payload in recent:
            fields = json.loads(payload)
            if fields.get("MsgType") == "file" and fields.get("MediaId"):
                data = await self.client.get_media(fields["MediaId"])
                return fields.get("FileName") or "orders.csv", data
            if fields.get("MsgType") == "link" and fields.get("Url"):  # a shared link
                return await _download(fields["Url"])
        return "", None

    def _said(self, actor: Actor, template: str, **context: object) -> manager_cases.Finish:
        text = self.desk.render(self.desk.staff_language, template, **context)

        async def finish(uow: UnitOfWork) -> None:
            self._tell(uow, actor, text)

        return finish

    # -- callbacks into use cases ----------------------------------------------------------

    def _tell(self, uow: UnitOfWork, actor: Actor, text: str | None, rows: Any = ()) -> None:
        if text:
            uow.outbox.to_room(Say(text, rows), urgency=Urgency.RELAY, to=actor)

    async def handle(self, uow: UnitOfWork, fields: dict[str, str]) -> None:
        now = self.clock()
        actor = await self.named(self.actor(fields.get("FromUserName", "")))
        if actor is None:
            logger.warning("A member the desk does not know wrote: %s", fields.get("FromUserName"))
            return
        kind = fields.get("MsgType")
        if kind == "event" and fields.get("Event") == "template_card_event":
            task_id, key = fields.get("TaskId", ""), fields.get("EventKey", "")
            code = fields.get("ResponseCode", "")
            if code:
                await uow.staff_app.fresh_code(task_id, actor.id, code, now)
            if key.startswith(WHICH):
                await self._which_tapped(uow, actor, key[len(WHICH) :], now)
                return
            answer = await staff.card_tapped(uow, self.desk, actor, key, None, now)
            await self._focus_if_taken(uow, actor, staff.ticket_of_key(key), now)
            self._tell(uow, actor, answer.text)
            return
        if kind == "text":
            await self._text(uow, actor, fields.get("Content", "").strip(), now, fields)
        elif kind == "image":
            attachment = Attachment("photo", fields.get("MediaId", ""), CHANNEL)
            await self._reply(uow, actor, None, "", now, attachment, fields.get("MsgId"))

    async def _which_tapped(self, uow: UnitOfWork, actor: Actor, rest: str, now: datetime) -> None:
        """A ticket chosen for words written while the member had no current one: it becomes
        current, and those words (kept in the app's inbox) go to it, once."""
        lang = self.desk.staff_language
        number, _, msg_id = rest.partition(":")
        ticket = await uow.tickets.get(int(number)) if number.isdigit() else None
        if ticket is None or ticket.id is None:
            self._tell(uow, actor, self.desk.render(lang, "staff/no_such_ticket.txt"))
            return
        await uow.staff_app.set_focus(actor.id, ticket.id, now)
        stored = await uow.staff_app.callback(msg_id) if msg_id else None
        if stored is None or await uow.messages.exists("staff", msg_id):
            self._tell(uow, actor, self.desk.render(lang, "staff/now_on.txt", ticket=ticket))
            return
        fields = json.loads(stored.payload)
        if fields.get("MsgType") == "image":
            attachment = Attachment("photo", fields.get("MediaId", ""), CHANNEL)
            await self._reply(uow, actor, ticket.id, "", now, attachment, msg_id)
        else:
            await self._reply(uow, actor, ticket.id, fields.get("Content", "").strip(), now,
                              None, msg_id)  # fmt: skip

    async def _focus_if_taken(
        self, uow: UnitOfWork, actor: Actor, ticket_id: int | None, now: datetime
    ) -> None:
        """The ticket becomes the member's current one once they have it."""
        ticket = await uow.tickets.get(ticket_id) if ticket_id else None
        if ticket is not None and ticket.taken_by and ticket.taken_by.id == actor.id:
            await uow.staff_app.set_focus(actor.id, ticket_id or 0, now)

    async def _text(
        self, uow: UnitOfWork, actor: Actor, text: str, now: datetime, fields: dict[str, str]
    ) -> None:
        lang = self.desk.staff_language
        ref = fields.get("MsgId")
        if not text:
            return
        if text.split()[0].lower() == "/whoami":
            self._tell(uow, actor, self.desk.render(lang, "staff/whoami_app.txt", userid=actor.id))
            return
        target = staff.addressed(text)
        command = (target[1] if target else text).split(" ", 1)[0].lower()
        if command in staff.FACT_COMMANDS:  # `/cause 产品 供应链`, or `T-000123 /cause …`
            await self._fact(uow, actor, target[0] if target else None, command,
                             (target[1] if target else text)[len(command):], now)  # fmt: skip
            return
        if command == staff.HISTORY_COMMAND:  # `/history`, or `T-000123 /history`
            await self._history(uow, actor, target[0] if target else None, now)
            return
        if command == staff.PHRASE_COMMAND:  # `/p`, `/p 道歉`, or `T-000123 /p 道歉`
            args = (target[1] if target else text)[len(command) :]
            await self._phrases(uow, actor, target[0] if target else None, args, ref, now)
            return
        if command == manager_cases.DASHBOARD_COMMAND:  # a card that signs them in
            manager_cases.dashboard_in_room(uow, self.desk, actor)
            return
        if text.startswith("/"):
            command = text.split()[0].lower()
            self._tell(uow, actor, self.desk.render(lang, "staff/not_here_yet.txt",
                                                    command=command))  # fmt: skip
            return
        answer = await staff.typed_action(uow, self.desk, actor, text, now)
        if answer is not None:
            parsed = staff.typed(self.desk, text)
            if parsed is not None:
                await self._focus_if_taken(uow, actor, parsed[2], now)
            self._tell(uow, actor, answer.text)
            return
        if target is not None:
            ticket_id, rest = target
            await self._reply(uow, actor, ticket_id, rest, now, None, ref)
            return
        await self._reply(uow, actor, None, text, now, None, ref)

    async def _fact(
        self,
        uow: UnitOfWork,
        actor: Actor,
        ticket_id: int | None,
        command: str,
        args: str,
        now: datetime,
    ) -> None:
        """A fact command about the named ticket, or else the member's current one."""
        if ticket_id is None:
            ticket_id = await uow.staff_app.focus(actor.id)
        ticket = await uow.tickets.get(ticket_id) if ticket_id else None
        if ticket is None or ticket.id is None:
            lang = self.desk.staff_language
            self._tell(uow, actor, self.desk.render(lang, "staff/fact_where_app.txt",
                                                    command=command))  # fmt: skip
            return
        await uow.staff_app.set_focus(actor.id, ticket.id, now)
        await staff.fact_command(uow, self.desk, actor, ticket, command, args, now)

    async def _phrases(
        self,
        uow: UnitOfWork,
        actor: Actor,
        ticket_id: int | None,
        args: str,
        ref: str | None,
        now: datetime,
    ) -> None:
        """The shop's phrases for the named ticket, or else the member's current one."""
        if ticket_id is None:
            ticket_id = await uow.staff_app.focus(actor.id)
        ticket = await uow.tickets.get(ticket_id) if ticket_id else None
        if ticket is None or ticket.id is None:
            staff.phrases_where(uow, self.desk, actor, "staff/phrase_where_app.txt")
            return
        await uow.staff_app.set_focus(actor.id, ticket.id, now)
        await staff.phrase_command(uow, self.desk, actor, ticket, args, ref, now)

    async def _history(
        self, uow: UnitOfWork, actor: Actor, ticket_id: int | None, now: datetime
    ) -> None:
        """The customer's history for the named ticket, or else the member's current one."""
        if ticket_id is None:
            ticket_id = await uow.staff_app.focus(actor.id)
        ticket = await uow.tickets.get(ticket_id) if ticket_id else None
        if ticket is None or ticket.id is None:
            where = self.desk.render(
                self.desk.staff_language, "staff/fact_where_app.txt", command="/history"
            )
            self._tell(uow, actor, where)
            return
        await uow.staff_app.set_focus(actor.id, ticket.id, now)
        await staff.history_command(uow, self.desk, actor, ticket)

    async def _reply(
        self,
        uow: UnitOfWork,
        actor: Actor,
        ticket_id: int | None,
        text: str,
        now: datetime,
        attachment: Attachment | None,
        ref: str | None,
    ) -> None:
        lang = self.desk.staff_language
        if ticket_id is None:
            ticket_id = await uow.staff_app.focus(actor.id)
        ticket = await uow.tickets.get(ticket_id) if ticket_id else None
        if ticket is None or ticket.id is None:
            open_ids = await uow.staff_app.open_tickets_of(actor.id)
            references = [f"T-{i:06d}" for i in open_ids]
            kept = f":{ref}" if ref else ""  # the words, kept in the inbox, go where tapped
            rows = tuple(
                (Choice(r, f"{WHICH}{i}{kept}"),)
                for r, i in zip(references, open_ids, strict=True)
            )
            self._tell(uow, actor, self.desk.render(lang, "staff/which_ticket.txt",
                                                    tickets=references), rows)  # fmt: skip
            return
        await uow.staff_app.set_focus(actor.id, ticket.id, now)
        if not text and attachment is None:
            self._tell(uow, actor, self.desk.render(lang, "staff/now_on.txt", ticket=ticket))
            return
        said = StaffSaid(
            actor=actor,
            ticket_id=ticket.id,
            kind="photo" if attachment else "text",
            text=text or None,
            attachment=attachment,
            ref=ref,
        )
        if await staff.replied(uow, self.desk, said, now):
            self._tell(uow, actor, self.desk.render(lang, "staff/sent_to.txt", ticket=ticket))

    # -- delivering the outbox -------------------------------------------------------------

    async def deliver(
        self, rows: list[Outgoing], ticket: Ticket | None, refresh: Refresh
    ) -> Outcome:
        head = rows[0]
        try:
            if head.kind == CLEAR:  # a card's buttons go by updating it; nothing to take off
                return Outcome(Delivery.SENT, [head.id])
            if head.kind == CARD and ticket is not None:
                ids = await self._post_card(head, ticket)
            elif head.kind == CARD_EDIT and ticket is not None:
                ids = await self._edit_card(head, ticket)
            elif head.kind == RELAY and head.payload.get("merge") and ticket is not None:
                covered, ids = await self._relay(head, ticket, refresh)
                return Outcome(Delivery.SENT, covered, message_ids=ids)
            else:
                ids = await self._to_people(head, ticket)
        except WeComUnavailable as exc:
            raise Passing(str(exc)) from exc
        except WeComIpNotTrusted as exc:
            self._ip_not_trusted(exc)
            raise Passing("WeCom 60020: not a trusted IP, waiting") from None
        except WeComError as exc:
            if exc.errcode in PASSING_ERRORS:
                raise Passing(f"WeCom {exc.errcode}") from exc
            logger.warning("WeCom app refused row %s: %s", head.id, exc)
            return Outcome(Delivery.FAILED, [head.id], detail=f"wecom {exc.errcode}")
        return Outcome(Delivery.SENT, [head.id], message_ids=ids)

    def _ip_not_trusted(self, exc: WeComIpNotTrusted) -> None:
        """One clear line, at most once a minute, while WeCom refuses this server's address:
        what staff are sent waits meanwhile, and goes once the address is added."""
        now = time.monotonic()
        if self._ip_warned is not None and now - self._ip_warned < IP_WARN_EVERY:
            return
        self._ip_warned = now
        where = exc.ip or "this server's outgoing address (WeCom did not say which)"
        logger.error(
            "WeCom refuses the app's calls from this server (60020): add %s to the app's "
            "企业可信IP (WeCom admin console: 应用管理, the app, 企业可信IP); messages to staff "
            "wait until then",
            where,
        )

    def _card_body(self, say: Say, task_id: str, manager: bool, note: str = "") -> dict[str, Any]:
        summary = say.summary
        title = summary.title if summary else cut_bytes(plain_text(say.text).split("\n")[0], 120)
        buttons = [
            {"text": cut_bytes(c.label, 40), "style": 1, "key": c.key}
            for row in say.choices
            for c in row
            if c.kind == "tap" and c.key and (manager or c.for_role != "manager")
        ][:MOST_BUTTONS]
        card: dict[str, Any] = {
            "card_type": "button_interaction",
            "main_title": {"title": cut_bytes(title, 120)},
            "task_id": task_id,
            "button_list": buttons,
        }
        if summary is not None:
            card["main_title"]["desc"] = cut_bytes(note or summary.how, 500)
            card["horizontal_content_list"] = [
                {"keyname": cut_bytes(k, 20), "value": cut_bytes(v, 60)} for k, v in summary.rows
            ][:6]
        return card

    async def _post_card(self, head: Outgoing, ticket: Ticket) -> list[str]:
        assert ticket.id is not None
        say = head.say
        ids: list[str] = []
        async with self.new_uow(read_only=True) as uow:  # a retried row: what already went
            done = {c.task_id for c in await uow.staff_app.cards(ticket.id)}
        for group, manager in ((self.staff, False), (self.managers, True)):
            if not group:
                continue
            task_id = f"t{ticket.id}-{'m' if manager else 's'}-{head.id}"
            body = self._card_body(say, task_id, manager)
            if not body["button_list"] or task_id in done:
                continue
            await self._card_turn(group, ticket)
            for member in group:
                self._cards_waiting[member] = self._cards_waiting.get(member, 0) + 1
            try:
                card = {"msgtype": "template_card", "template_card": body}
                result = await self._send(group, card, CARD_RESERVE)
            finally:
                for member in group:
                    self._cards_waiting[member] -= 1
            for member in group:
                self._listed.get(member, set()).discard(ticket.id)
            ids.append(result.msgid)
            async with self.new_uow() as uow:  # each member's card, as it returns
                for member in group:
                    if member.lower() in result.invalid_users:
                        continue
                    await uow.staff_app.card_sent(
                        ticket.id, member, task_id, result.response_code, self.clock()
                    )
                if say.summary is not None:  # what the card shows
                    await uow.staff_app.told(ticket.id, group, say.summary.state)
                await uow.commit()
        for piece in split_bytes(plain_text(say.text)):
            ids.append((await self._send(self.members, _text(piece))).msgid)
        return ids

    async def _send(self, people: list[str], body: dict[str, Any], reserve: int = 0) -> SendResult:
        """message/send within each member's 30 a minute and 1000 an hour."""
        await self.pace.take(people, reserve)
        try:
            result = await self.client.send(people, body)
        except WeComError:  # WeCom answered: nothing went
            self.pace.unused(people)
            raise
        except BaseException:  # it may have arrived: counted
            self.pace.sent(people)
            raise
        self.pace.sent(people)
        return result

    async def _card_turn(self, group: list[str], ticket: Ticket) -> None:
        """A card is about to go. A member whose minute is full (or who has cards waiting
        already) is told of it at once, in one digest with the others waiting; the card
        follows as the minute allows."""
        assert ticket.id is not None
        busy = [
            m
            for m in group
            if ticket.id not in self._listed.get(m, set())
            and self.pace.free(m) - self._cards_waiting.get(m, 0) <= CARD_RESERVE
        ]
        for member in busy:
            self._announced.setdefault(member, {})[ticket.id] = ticket
        for member in busy:
            await self._digest(member, ticket.id)

    async def _digest(self, member: str, ticket_id: int) -> None:
        lock = self._digest_locks.setdefault(member, asyncio.Lock())
        async with lock:
            if ticket_id not in self._announced.get(member, {}):
                return  # another card's digest listed it meanwhile
            await self.pace.take([member])  # the place a card leaves free: what came
            waiting = self._announced[member]  # meanwhile is listed too
            tickets = list(waiting.values())[:DIGEST_MOST]
            for ticket in tickets:
                waiting.pop(ticket.id or 0, None)
                self._listed.setdefault(member, set()).add(ticket.id or 0)
            lang = self.desk.staff_language
            lines = [
                {
                    "ticket": t,
                    "category": common.category_label(self.desk, t, lang),
                    "severity": common.severity_label(self.desk, t, lang),
                }
                for t in tickets
            ]
            text = plain_text(
                self.desk.render(
                    lang, "staff/app_digest.txt", lines=lines, per_minute=self.pace.per_minute
                )  # fmt: skip
            )
            try:
                result = await self.client.send([member], _text(cut_bytes(text, TEXT_BYTES)))
            except WeComIpNotTrusted as exc:  # the cards wait, and say it
                self.pace.unused([member])
                self._ip_not_trusted(exc)
                return
            except (WeComError, WeComUnavailable) as exc:  # the cards themselves still follow
                self.pace.sent([member])
                logger.error("Digest of %s tickets to %s not sent: %s", len(tickets), member, exc)
                return
            self.pace.sent([member])
            logger.info("Digest of %s tickets to %s: %s", len(tickets), member, result.msgid)

    async def _edit_card(self, head: Outgoing, ticket: Ticket) -> list[str]:
        assert ticket.id is not None
        async with self.new_uow(read_only=True) as uow:
            cards = await uow.staff_app.cards(ticket.id)
        taker = ticket.taken_by
        note = label(self.desk.staff_language, "taking", name=taker.name) if taker else ""
        state = head.say.summary.state if head.say.summary is not None else ""
        by_code: dict[str, list[str]] = {}
        for card in cards:
            if card.response_code:
                by_code.setdefault(card.response_code, []).append(card.userid)
        updated: set[str] = set()
        for code, userids in by_code.items():
            task_id = next(c.task_id for c in cards if c.response_code == code)
            manager = all(u in self.managers for u in userids)
            body = self._card_body(head.say, task_id, manager, note)
            try:
                if not manager and taker is not None:
                    await self.client.update_card(code, userids, replace_name=note)
                elif body["button_list"]:
                    await self.client.update_card(code, userids, card=body)
                else:
                    await self.client.update_card(code, userids, replace_name=note or "—")
            except WeComIpNotTrusted:
                raise
            except WeComError as exc:  # the code was used or is past 72 hours
                logger.info("Card of %s not updated for %s: %s", ticket.reference, userids, exc)
                continue
            updated.update(userids)
            async with self.new_uow() as uow:
                for userid in userids:
                    await uow.staff_app.code_used(ticket.id, userid)
                await uow.staff_app.told(ticket.id, userids, state)
                await uow.commit()
        ids: list[str] = []
        # a card that can no longer change (no fresh code: WeCom allows an update within 72
        # hours of a tap): where the ticket stands, said in a plain message, once a change
        behind = [c.userid for c in cards if c.userid not in updated and state and c.told != state]
        if behind:
            ids.append((await self._send(behind, _text(state))).msgid)
            async with self.new_uow() as uow:
                await uow.staff_app.told(ticket.id, behind, state)
                await uow.commit()
        return ids

    async def _relay(
        self, head: Outgoing, ticket: Ticket, refresh: Refresh
    ) -> tuple[list[int], list[str]]:
        """A customer's text for the people on the ticket. A ticket's texts go at most once a
        pace; those that waited meanwhile go as one message (up to 2048 bytes) that says how
        many it holds, so a flood cannot use up a member's minute."""
        lane = head.lane
        wait = self._last_relay.get(lane, float("-inf")) + RELAY_PACE - self.pace.clock()
        if wait > 0:
            await self.pace.sleep(wait)
        self._last_relay[lane] = self.pace.clock()
        if len(self._last_relay) > 4096:  # tickets gone quiet
            since = self.pace.clock() - RELAY_PACE
            self._last_relay = {k: v for k, v in self._last_relay.items() if v > since}
        fresh = await refresh()
        batch = [fresh[0]] if fresh and fresh[0].id == head.id else [head]
        header, body = batch[0].payload["merge"]
        bodies = [plain_text(body)]
        for row in fresh[1:]:
            merge = row.payload.get("merge") if row.kind == RELAY else None
            if not merge or row.say.attachments:
                break
            text = plain_text(merge[1])
            size = len(plain_text(header).encode()) + 80 + sum(len(b.encode()) + 1 for b in bodies)
            if size + len(text.encode()) > TEXT_BYTES:
                break
            batch.append(row)
            bodies.append(text)
        if len(batch) == 1:
            say = batch[0].say
        else:
            lang = self.desk.staff_language
            count = self.desk.render(lang, "staff/merged_count.txt", count=len(batch))
            say = Say(f"{header} {count}\n" + "\n".join(common.escape(b) for b in bodies))
        ids = await self._to_people(batch[0], ticket, say)
        return [r.id for r in batch], ids

    async def _recipients(self, head: Outgoing, ticket: Ticket | None) -> list[str]:
        to = head.payload.get("to")
        if to:
            return [to]
        if head.payload.get("alert"):
            return self.managers
        if ticket is not None and ticket.id is not None:
            if ticket.taken_by is not None and ticket.taken_by.id in self.members:
                return [ticket.taken_by.id]
            async with self.new_uow(read_only=True) as uow:
                got = [c.userid for c in await uow.staff_app.cards(ticket.id)]
            return got or self.members
        return self.members

    def _page_card(self, page: Choice, text: str) -> dict[str, Any]:
        """A page of the desk's as a text card (textcard) whose link signs the member in: the
        page learns who opened it from WeCom, not from anything in the link."""
        settings = self.settings
        assert settings.wecom_corp_id and settings.wecom_agent_id is not None
        link = sign_in_link(
            settings.wecom_oauth_url, settings.wecom_corp_id, settings.wecom_agent_id, page.key
        )
        return {
            "msgtype": "textcard",
            "textcard": {
                "title": cut_bytes(page.label, 128),
                "description": cut_bytes(text or page.label, 512),
                "url": link,
                "btntxt": label(self.desk.staff_language, "open_card"),  # else WeCom's 详情
            },
        }

    async def _to_people(
        self, head: Outgoing, ticket: Ticket | None, say: Say | None = None
    ) -> list[str]:
        people = await self._recipients(head, ticket)
        say = say or head.say
        ids: list[str] = []
        text = plain_text(say.text)
        if ticket is not None and text and ticket.reference not in text:
            text = f"【{ticket.reference}】{text}"
        pages = [c for row in say.choices for c in row if c.kind == "page" and c.key]
        if pages:  # the words go on the page's card
            for page in pages:
                ids.append((await self._send(people, self._page_card(page, text))).msgid)
            text = ""
        for piece in split_bytes(text) if text else []:
            ids.append((await self._send(people, _text(piece))).msgid)
        for attachment in say.attachments:
            kind = "image" if attachment.kind == "photo" else "file"
            data = await self.fetch(attachment)
            name = "photo.jpg" if kind == "image" else (attachment.name or "file.bin")
            media_id = await self.client.upload_media(kind, data, name)
            body = {"msgtype": kind, kind: {"media_id": media_id}}
            ids.append((await self._send(people, body)).msgid)
        taps = [c for row in say.choices for c in row if c.kind == "tap" and c.key]
        if taps:
            for group, manager in ((people, False),):
                usable = [c for c in taps if manager or c.for_role != "manager"]
                if not usable:
                    continue
                title = (ticket.reference if ticket else "") or cut_bytes(text, 60)
                body = {
                    "card_type": "button_interaction",
                    "main_title": {"title": title, "desc": cut_bytes(text, 500)},
                    "task_id": f"r{head.id}",
                    "button_list": [
                        {"text": cut_bytes(c.label, 40), "style": 1, "key": c.key}
                        for c in usable[:MOST_BUTTONS]
                    ],
                }
                result = await self._send(group, {"msgtype": "template_card",
                                                        "template_card": body})  # fmt: skip
                ids.append(result.msgid)
        return ids


def _text(content: str) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": content}}


def sign_in_link(
    oauth_url: str, corp_id: str, agent_id: int, page_url: str, state: str = ""
) -> str:
    """A link to one of the desk's pages through WeCom's web sign-in (91022): WeCom sends the
    member's browser on to the page (`?via=wecom` added) with `code` and `state` in its query,
    and the desk asks WeCom whom the code names (auth/getuserinfo). snsapi_base: the member's
    userid only, with no consent screen."""
    parts = urlsplit(page_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    redirect = urlunsplit(parts._replace(query=urlencode([*query, ("via", "wecom")])))
    state = state or re.sub(r"[^A-Za-z0-9]", "", parts.path.rsplit("/", 1)[-1])[:128] or "page"
    params = [
        ("appid", corp_id),
        ("redirect_uri", redirect),
        ("response_type", "code"),
        ("scope", "snsapi_base"),
        ("state", state),
        ("agentid", str(agent_id)),
    ]
    query = urlencode(params, quote_via=quote)
    return f"{oauth_url}/connect/oauth2/authorize?{query}#wechat_redirect"


ORDERS_MOST = 30 * 1024 * 1024  # an orders file larger than this is refused


class OrdersUnreachable(Exception):
    """The orders file's link could not be read (what went wrong, never the link itself: its
    query may hold a key)."""


async def _download(url: str) -> tuple[str, bytes | None]:
    """An orders file from a link (WeCom's apps receive no files: a shop's system can export
    one to a link). The file's name is the link's last part."""
    import aiohttp

    from bot.http_failure import http_failure

    name = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1] or "orders.csv"
    try:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as answer:
            answer.raise_for_status()
            data = await answer.content.read(ORDERS_MOST + 1)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise OrdersUnreachable(http_failure(exc)) from None
    if len(data) > ORDERS_MOST:
        raise OrdersUnreachable("over 30 MB")
    return name, data
