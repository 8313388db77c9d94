"""WeChat customers through WeCom customer service (微信客服): the callback server, the durable
pull of messages (kf/sync_msg), their translation into the desk's use cases, and the customer
channel that delivers the outbox with kf/send_msg inside WeCom's window (5 messages within 48 h
of each customer message).

WeCom calls back with only a token; the messages themselves are pulled with the stored cursor,
one account at a time, until `has_more` is 0. Each page is stored in the inbox (by msgid, so a
message pulled twice is stored once) in the same transaction that moves the cursor, then
handled in the customer's lane like a Telegram update. The callback is answered `success` at
once: a slow answer makes WeCom call again.

Several instances (`claims`): WeCom calls back whichever instance it reaches, and an account's
cursor is pulled by one instance at a time, under a lease (`bot.leases`). An instance that finds
another pulling tries again after a pause, until it may pull itself: the message its callback
announced may have come after the other's last page.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot.channels.base import Delivery, Outcome, Passing, Refresh
from bot.channels.wecom.client import KfClient, WeComError, WeComUnavailable
from bot.channels.wecom.crypto import CryptoError, WeComCrypto
from bot.channels.wecom.text import TEXT_BYTES, plain_text, split_bytes
from bot.config import Settings
from bot.domain.messages import Answer, Attachment, Outgoing, Said, Tap
from bot.domain.tickets import CustomerRef
from bot.durable import ORPHAN_AFTER, take_over, until_done
from bot.lanes import Job, Lanes
from bot.leases import Claims, holding, wall_clock
from bot.metrics import Metrics
from bot.shared import LockBusy
from handlers import customer
from handlers.context import Desk
from storage.db import passing
from storage.outbox import CLEAR
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

CHANNEL = "wecom"
MENU_HEAD_BYTES = 1024  # a menu's head_content
WINDOW = 48 * 3600.0  # seconds after a customer's message in which the shop may answer
WELCOME_VALID = 18.0  # seconds a welcome_code may be used (WeCom: 20)
BUDGET = 5  # messages the shop may send after each customer message
WINDOW_ERRORS = {95001: "budget", 95002: "late", 95018: "late", 95013: "ended"}
PASSING_ERRORS = {-1: "system busy", 45009: "frequency limit", 45033: "too many at once"}
REPLY = "reply:"  # a menu item that stands for a ready answer (its text comes back)
PULL = "wecom:sync:"  # an account's pull lease is named this and its open_kfid
PULL_WAIT = 0.2  # an instance that finds another pulling tries again after this, doubling

Fetch = Callable[[Attachment], Awaitable[bytes]]


@dataclass
class Window:
    """What the shop may still send to one customer: the clock starts at their last message."""

    last_customer_at: float | None = None  # never wrote: nothing may be sent
    sent: int = 0
    counted: set[str] = field(default_factory=set)  # msgids counted in `sent` (5 at most)
    welcome: tuple[str, float] | None = None  # enter_session's welcome_code and when

    def left(self, now: float) -> int:
        if self.last_customer_at is None or now - self.last_customer_at > WINDOW:
            return 0
        return max(0, BUDGET - self.sent)

    def welcome_valid(self, now: float) -> bool:
        return self.welcome is not None and now - self.welcome[1] < WELCOME_VALID

    def closed(self, now: float) -> bool:
        """Over (48 hours since the customer's last message) and no welcome waits: the same as
        no window at all, so it need not be kept."""
        last = self.last_customer_at
        return (last is None or now - last > WINDOW) and not self.welcome_valid(now)


@dataclass
class Windows:
    """Each WeChat customer's window, kept as messages come and go: only the customers who
    wrote in the last 48 hours (or whose welcome is still valid), so that what the desk holds
    grows with its traffic, not with every customer it ever had. Past `most` windows (a flood
    of new customers), the least recently active go first, with a warning: a message to one of
    them is then refused as late and staff are told, as after 48 hours."""

    most: int = 20_000  # about 6 MB of windows
    clock: Callable[[], float] = time.time
    by_customer: OrderedDict[str, Window] = field(default_factory=OrderedDict)
    evicted: int = 0  # open windows dropped for room

    def of(self, external_userid: str) -> Window:
        """The customer's window, kept from now on (made if they have none)."""
        window = self.by_customer.get(external_userid)
        if window is None:
            window = self.by_customer[external_userid] = Window()
            self._forget(external_userid)
        return window

    def get(self, external_userid: str) -> Window:
        """The customer's window, or a closed one that is not kept (a look, nothing more)."""
        return self.by_customer.get(external_userid) or Window()

    def customer_wrote(self, external_userid: str, at: float) -> None:
        window = self.of(external_userid)
        window.last_customer_at = max(window.last_customer_at or at, at)
        window.sent = 0
        window.counted.clear()
        self.by_customer.move_to_end(external_userid)  # the least recently active go first
        self._forget(external_userid)

    def welcomed(self, external_userid: str, code: str, at: float) -> None:
        """WeCom gave a welcome code: the first answer may go on it, for a few seconds."""
        self.of(external_userid).welcome = (code, at)
        self.by_customer.move_to_end(external_userid)

    def _forget(self, keep: str) -> None:
        """Drop closed windows, least recently active first (each is dropped once: the work is
        spread over the messages), and open ones past `most`; never the one in hand."""
        now = self.clock()
        while self.by_customer:
            user, window = next(iter(self.by_customer.items()))
            if user == keep:
                break
            if not window.closed(now):
                if len(self.by_customer) <= self.most:
                    break
                self.evicted += 1
                if self.evicted == 1 or self.evicted % 1000 == 0:
                    logger.warning(
                        "More than %s WeChat customers wrote in 48 hours: %s windows dropped "
                        "for room (a message to them is refused as late)",
                        self.most,
                        self.evicted,
                    )
            del self.by_customer[user]


class Nicknames:
    """Customers' WeChat nicknames, once looked up: the `most` most recently used (one that
    was dropped is asked of WeCom again when its customer next writes)."""

    def __init__(self, most: int = 10_000) -> None:
        self.most = most
        self._names: OrderedDict[str, str] = OrderedDict()

    def __contains__(self, user: object) -> bool:
        return user in self._names

    def __len__(self) -> int:
        return len(self._names)

    def get(self, user: str) -> str | None:
        name = self._names.get(user)
        if name is not None:
            self._names.move_to_end(user)
        return name

    def put(self, user: str, name: str) -> None:
        self._names[user] = name
        self._names.move_to_end(user)
        while len(self._names) > self.most:
            self._names.popitem(last=False)


class WeComCustomers:
    """The customer channel on WeChat: kf/send_msg, inside the window."""

    name = CHANNEL

    def __init__(self, client: KfClient, open_kfid: str, windows: Windows, fetch: Fetch) -> None:
        self.client = client
        self.open_kfid = open_kfid
        self.windows = windows
        self.fetch = fetch
        # the customer's window as the database has it: another instance may have pulled their
        # last message, or sent in their window (set by `WeCom.connect`)
        self.look_up: Callable[[str], Awaitable[None]] | None = None

    async def deliver(self, rows: list[Outgoing], refresh: Refresh) -> Outcome:
        head = rows[0]
        if head.kind == CLEAR:  # a menu in WeChat cannot be taken back; its keys are checked
            return Outcome(Delivery.SENT, [head.id])
        who = head.recipient
        window = self.windows.get(who)
        on_event = window.welcome_valid(time.time())
        if not on_event and window.left(time.time()) <= 0 and self.look_up is not None:
            await self.look_up(who)  # not known here: maybe another instance's
            window = self.windows.get(who)
        if not on_event and window.left(time.time()) <= 0:
            last = window.last_customer_at
            reason = "late" if last is None or time.time() - last > WINDOW else "budget"
            return Outcome(Delivery.FAILED, [head.id], detail=f"window: {reason}")
        batch = [head]
        if not on_event and window.left(time.time()) == 1:  # the last one: say all that waits
            batch = _mergeable(rows)
        try:
            ids = await self._send(head, batch, window, on_event)
        except WeComUnavailable as exc:  # WeCom drops a msgid it has seen: safe to send again
            raise Passing(str(exc)) from exc
        except WeComError as exc:
            if exc.errcode in PASSING_ERRORS:
                raise Passing(f"WeCom {exc.errcode}: {PASSING_ERRORS[exc.errcode]}") from exc
            reason = WINDOW_ERRORS.get(exc.errcode)
            if reason:
                window.sent = BUDGET
            detail = f"window: {reason}" if reason else f"wecom {exc.errcode}: {exc.errmsg}"
            logger.warning("WeChat message to %s refused: %s", who, exc)
            return Outcome(Delivery.FAILED, [r.id for r in batch], detail=detail)
        return Outcome(Delivery.SENT, [r.id for r in batch], message_ids=ids)

    async def _send(
        self, head: Outgoing, batch: list[Outgoing], window: Window, on_event: bool
    ) -> list[str]:
        says = [row.say for row in batch]
        text = "\n\n".join(plain_text(s.text) for s in says if s.text)
        choices = [c for row in says[-1].choices for c in row if c.kind != "phone"]
        attachments = [a for s in says for a in s.attachments]
        bodies: list[dict[str, Any]] = []
        pieces = split_bytes(text) if text else []
        if choices:  # the menu's head holds 1,024 bytes: what is before it goes as text
            head_text = pieces.pop() if pieces else ""
            if len(head_text.encode()) > MENU_HEAD_BYTES:
                *before, head_text = split_bytes(head_text, MENU_HEAD_BYTES)
                pieces.extend(before)
        for piece in pieces:
            bodies.append({"msgtype": "text", "text": {"content": piece}})
        for attachment in attachments:
            bodies.append(await self._media(attachment))
        if choices:
            items = [
                {
                    "type": "click",
                    "click": {"id": c.key or f"{REPLY}{c.label}"[:128], "content": c.label},
                }
                for c in choices
            ]
            bodies.append(
                {"msgtype": "msgmenu", "msgmenu": {"head_content": head_text, "list": items}}
            )
        ids: list[str] = []
        for index, body in enumerate(bodies):
            msgid = f"desk{head.id}p{index}"  # the outbox's key: a retried send is not doubled
            if on_event and window.welcome is not None and index == 0:
                code = window.welcome[0]
                ids.append(
                    await self.client.send_msg_on_event({"code": code, "msgid": msgid, **body})
                )
                window.welcome = None  # used: only once it went
                continue
            ids.append(
                await self.client.send_msg(
                    {"touser": head.recipient, "open_kfid": self.open_kfid, "msgid": msgid, **body}
                )
            )
            if msgid not in window.counted:  # a retried piece WeCom had already was not sent
                window.counted.add(msgid)
                window.sent += 1
        return ids

    async def _media(self, attachment: Attachment) -> dict[str, Any]:
        kind = "image" if attachment.kind == "photo" else "file"
        if attachment.channel == CHANNEL:
            media_id = attachment.ref
        else:
            data = await self.fetch(attachment)
            name = "photo.jpg" if kind == "image" else f"{attachment.kind}.bin"
            media_id = await self.client.upload_media(kind, data, name)
        return {"msgtype": kind, kind: {"media_id": media_id}}


def _mergeable(rows: list[Outgoing]) -> list[Outgoing]:
    """The head and the plain texts behind it that fit in one message."""
    batch = [rows[0]]
    size = len(plain_text(rows[0].say.text).encode())
    for row in rows[1:]:
        if row.kind == CLEAR or row.say.attachments or row.say.choices:
            break
        size += len(plain_text(row.say.text).encode()) + 2
        if size > TEXT_BYTES:
            break
        batch.append(row)
    return batch


class WeCom:
    """The WeCom side of the desk: the callback server, the pull, and the customer channel."""

    def __init__(
        self, settings: Settings, fetch_telegram: Fetch, metrics: Metrics | None = None
    ) -> None:
        assert settings.wecom_secret and settings.wecom_token and settings.wecom_aes_key
        assert settings.wecom_corp_id and settings.wecom_open_kfid
        self.settings = settings
        self.open_kfid = settings.wecom_open_kfid
        self.metrics = metrics or Metrics()
        self.client = KfClient(
            settings.wecom_api_url,
            settings.wecom_corp_id,
            settings.wecom_secret.get_secret_value(),
            self.metrics,
        )
        self.crypto = WeComCrypto(
            settings.wecom_token.get_secret_value(),
            settings.wecom_aes_key.get_secret_value(),
            settings.wecom_corp_id,
        )
        self.windows = Windows()
        self.customers = WeComCustomers(self.client, self.open_kfid, self.windows, fetch_telegram)
        self._pulling: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._tokens: dict[str, str] = {}  # each account's newest callback token
        self._names = Nicknames()  # customers' WeChat nicknames, once looked up
        self._sweeping: asyncio.Task[None] | None = None
        self._in_hand: set[str] = set()  # submitted to a lane, not done yet

    def connect(
        self,
        desk: Desk,
        new_uow: Callable[[], UnitOfWork],
        lanes: Lanes,
        clock: Callable[[], datetime],
        claims: Claims | None = None,
        lock: Callable[[str], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        """`claims`: several instances share the database; this one pulls an account only
        while it holds the account's lease (None: it is the only one). `lock`: their shared
        locks, each customer's messages handled under theirs, in order, whoever pulled them."""
        self.desk = desk
        self.new_uow = new_uow
        self.lanes = lanes
        self.clock = clock
        self.claims = claims
        self.lock = lock
        self.customers.look_up = self._window_of

    async def fetch(self, attachment: Attachment) -> bytes:
        """A file a WeChat customer sent, for the staff room."""
        return await self.client.get_media(attachment.ref)

    # -- the callback server ---------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(self.settings.wecom_callback_path, self._verify)
        app.router.add_post(self.settings.wecom_callback_path, self._callback)

    async def start(self) -> None:
        """Recover what a stop left (the callbacks are served by the instance's server)."""
        logger.info("WeCom callbacks at %s", self.settings.wecom_callback_path)
        await self.recover()
        if self.claims is not None:  # several instances: one may die holding messages
            self._sweeping = asyncio.create_task(
                take_over(self._stopping, self._orphans, "WeChat messages")
            )

    async def stop(self) -> None:
        self._stopping.set()
        tasks = [*self._pulling.values(), *([self._sweeping] if self._sweeping else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.close()

    async def _verify(self, request: web.Request) -> web.StreamResponse:
        """WeCom checks the URL once (when it is saved in the console): echo its plain text."""
        now = self.clock().timestamp()
        q = request.query
        try:
            echo = self.crypto.answer_url_check(
                q.get("msg_signature", ""),
                q.get("timestamp", ""),
                q.get("nonce", ""),
                q.get("echostr", "").replace(" ", "+"),
                now,
            )
        except CryptoError as exc:
            logger.warning("WeCom URL check refused: %s", exc)
            return web.Response(status=403, text="forbidden")
        return web.Response(text=echo)

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        """Checked (signed by WeCom, and now), answered `success` at once; the pull runs in the
        background. Nothing in the body is parsed before the signature is checked."""
        now = self.clock().timestamp()
        q = request.query
        body = await request.read()
        try:
            event = self.crypto.open_callback(
                q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""), body, now
            )
        except CryptoError as exc:
            logger.warning("A callback that is not WeCom's was refused: %s", exc)
            return web.Response(status=403, text="forbidden")
        token = event.findtext("Token") or ""
        open_kfid = event.findtext("OpenKfId") or self.open_kfid
        if (event.findtext("Event") or "") == "kf_msg_or_event":
            self.pull(open_kfid, token)
        return web.Response(text="success")

    # -- pulling ---------------------------------------------------------------------------

    def pull(self, open_kfid: str, token: str) -> None:
        """Pull what is new for the account; one pull at a time for each account (a callback
        that comes meanwhile makes the running one go round once more)."""
        self._tokens[open_kfid] = token
        running = self._pulling.get(open_kfid)
        if running is not None and not running.done():
            self._again = getattr(self, "_again", set()) | {open_kfid}
            return
        self._pulling[open_kfid] = asyncio.create_task(self._pull(open_kfid))

    async def _pull(self, open_kfid: str) -> None:
        again, backoff, wait = True, 1.0, PULL_WAIT
        while again and not self._stopping.is_set():
            self._again = getattr(self, "_again", set()) - {open_kfid}
            try:
                if await self._pull_held(open_kfid):
                    wait = PULL_WAIT
                else:  # another instance pulls: once it is done, pull what came since
                    self._again = self._again | {open_kfid}
                    assert self.claims is not None
                    try:
                        await asyncio.wait_for(self._stopping.wait(), timeout=wait)
                    except TimeoutError:
                        pass
                    wait = min(wait * 2, self.claims.look_every)
                backoff = 1.0
            except Exception as exc:
                if not _passing(exc):
                    logger.exception(
                        "Pulling WeCom messages failed; the next callback tries again"
                    )
                else:  # WeCom or the database away: the messages wait at WeCom (3 days)
                    logger.warning(
                        "Pulling WeCom messages waits (%s): again in %.0fs", exc, backoff
                    )
                    try:
                        await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                    except TimeoutError:
                        pass
                    backoff = min(backoff * 2, 60.0)
                    self._again = self._again | {open_kfid}
            again = open_kfid in getattr(self, "_again", set())

    async def _pull_held(self, open_kfid: str) -> bool:
        """Pull under the account's lease, where instances share it; False: another holds it."""
        if self.claims is None:
            await self._pull_once(open_kfid)
            return True
        async with holding(self.new_uow, self.claims, PULL + open_kfid) as mine:
            if mine:
                await self._pull_once(open_kfid, self.claims)
            return mine

    async def _pull_once(self, open_kfid: str, claims: Claims | None = None) -> None:
        token = self._tokens.get(open_kfid, "")
        while True:
            async with self.new_uow() as uow:
                cursor = await uow.wecom.cursor(open_kfid)
            page = await self.client.sync_msg(cursor, token, open_kfid)
            messages = list(page.get("msg_list") or [])
            async with self.new_uow() as uow:
                if claims is not None and not await uow.leases.claim(
                    PULL + open_kfid, claims.holder, wall_clock(), claims.ttl
                ):  # this instance stalled past its lease: the page is the new holder's
                    logger.warning("The pull of %s passed to another instance", open_kfid)
                    return
                fresh = await uow.wecom.put_page(
                    open_kfid, messages, str(page.get("next_cursor") or cursor or ""), self.clock()
                )
                await uow.commit()
            by_id = {str(m["msgid"]): m for m in messages}
            for msgid in fresh:
                self._submit(msgid, by_id[msgid])
            if not page.get("has_more"):
                return

    async def recover(self) -> int:
        """Each open window as it stood (its last customer message, what was sent since), and
        the messages stored before a stop but never handled."""
        since = self.clock() - timedelta(seconds=WINDOW)
        async with self.new_uow() as uow:
            for user, at in (await uow.wecom.last_words(since)).items():
                self.windows.customer_wrote(user, at.timestamp())
                self.windows.of(user).sent = await uow.outbox.sent_since(f"{CHANNEL}:{user}", at)
            rows = [(r.msgid, json.loads(r.payload)) for r in await uow.wecom.pending()]
        for msgid, message in rows:
            self._submit(msgid, message)
        return len(rows)

    async def _orphans(self) -> None:
        """Messages stored a while ago and still not handled, not in hand here: handed on."""
        before = self.clock() - ORPHAN_AFTER
        async with self.new_uow(read_only=True) as uow:
            rows = [
                (r.msgid, json.loads(r.payload))
                for r in await uow.wecom.pending()
                if r.received_at.replace(tzinfo=before.tzinfo) < before
            ]
        for msgid, message in rows:
            if msgid not in self._in_hand:
                self._submit(msgid, message)

    async def _window_of(self, user: str) -> None:
        """A customer's window as the database knows it: their last message (whoever pulled
        it) and what went out since (whoever sent it)."""
        since = self.clock() - timedelta(seconds=WINDOW)
        async with self.new_uow(read_only=True) as uow:
            at = (await uow.wecom.last_words(since, user)).get(user)
            if at is None:
                return
            sent = await uow.outbox.sent_since(f"{CHANNEL}:{user}", at)
        window = self.windows.get(user)
        if window.last_customer_at is None or window.last_customer_at < at.timestamp():
            self.windows.customer_wrote(user, at.timestamp())
            self.windows.of(user).sent = sent

    def _submit(self, msgid: str, message: dict[str, Any]) -> None:
        self._in_hand.add(msgid)
        user = str(message.get("external_userid") or _event(message).get("external_userid") or "")
        if message.get("origin") == 3:
            sent = float(message.get("send_time") or time.time())
            self.windows.customer_wrote(user, min(sent, time.time()))
        job = self._job(msgid, message) if self.lock is None else self._drain(user, msgid)
        self.lanes.submit(f"{CHANNEL}:{user}", job)

    def _drain(self, user: str, trigger: str) -> Job:
        """Several instances: the customer's stored messages, in the order they were sent,
        under the customer's lock, whoever pulled them (one instance may pull a customer's
        first messages and another the next ones)."""
        assert self.lock is not None
        lock = self.lock

        async def job() -> None:
            try:
                async with lock(f"wecom:lane:{user}"):
                    await drain()
            except LockBusy:  # its holder handles ours too, or the sweep will
                logger.info("WeChat customer %s is handled elsewhere just now", user)
            finally:
                self._in_hand.discard(trigger)

        async def drain() -> None:
            done: set[str] = set()
            while not self._stopping.is_set():
                async with self.new_uow(read_only=True) as uow:
                    rows = [
                        (r.msgid, json.loads(r.payload))
                        for r in await uow.wecom.pending_of(user)
                        if r.msgid not in done
                    ]
                if not rows:
                    return
                rows.sort(key=lambda row: (float(row[1].get("send_time") or 0), row[0]))
                for msgid, message in rows:
                    if self._stopping.is_set():
                        return
                    done.add(msgid)
                    await self._job(msgid, message)()

        return job

    async def _look_up_name(self, user: str) -> None:
        """The customer's WeChat nickname, for the card (asked once; without it the card says
        "WeChat customer")."""
        if not user or user in self._names:
            return
        try:
            found = await self.client.customer_names([user])
        except Exception as exc:  # a name is nice to have: never hold the message up for it
            logger.warning("WeChat nickname of %s not found: %s", user, exc)
            found = {}
        self._names.put(user, found.get(user, ""))

    def _name(self, user: str) -> str:
        name = self._names.get(user)
        if name:
            return name
        return "微信客户" if self.settings.default_language == "zh" else "WeChat customer"

    def _job(self, msgid: str, message: dict[str, Any]) -> Job:
        async def job() -> None:
            await self._look_up_name(
                str(message.get("external_userid") or _event(message).get("external_userid") or "")
            )

            async def attempt() -> None:
                async with self.new_uow() as uow:
                    await self.handle(uow, message)
                    if not await uow.wecom.mark_handled(msgid, self.clock()):
                        return  # another instance handled it: this is undone
                    await uow.commit()
                self.metrics.handled(CHANNEL)

            async def set_aside(exc: Exception) -> None:
                await self._set_aside(msgid, message, exc)

            try:
                await until_done(
                    attempt,
                    what=f"WeCom message {msgid}",
                    passing=_passing,
                    set_aside=set_aside,
                    stopped=self._stopping,
                )
            finally:
                self._in_hand.discard(msgid)

        return job

    async def _set_aside(self, msgid: str, message: dict[str, Any], exc: Exception) -> None:
        """A message that keeps failing for a reason that will not pass (a bug) no longer holds
        up its chat: it is kept with its error, and staff hear whose message it was."""
        user = str(message.get("external_userid") or "")
        said = None
        if message.get("origin") == 3 and user:
            said = self._said(CustomerRef(CHANNEL, user), message, self.settings.default_language)
        try:
            async with self.new_uow() as uow:
                await uow.wecom.mark_handled(msgid, self.clock(), repr(exc)[:2000])
                if said is not None:
                    await customer.not_handled(uow, self.desk, said)
                await uow.commit()
            self.metrics.handled(CHANNEL)
        except Exception:  # left unhandled: tried again at the next start
            logger.exception("WeCom message %s could not be set aside", msgid)

    # -- messages into use cases -----------------------------------------------------------

    async def handle(self, uow: UnitOfWork, message: dict[str, Any]) -> Answer | None:
        now = self.clock()
        kind = message.get("msgtype")
        if kind == "event":
            await self._event(uow, _event(message), now)
            return None
        if message.get("origin") != 3:  # the system, or a servicer in WeCom's own app
            return None
        user = str(message.get("external_userid") or "")
        who = CustomerRef(CHANNEL, user)
        language = self.settings.default_language
        text = message.get("text") or {}
        menu_id = str(text.get("menu_id") or "")
        if kind == "text" and menu_id and not menu_id.startswith(REPLY):
            return await customer.tapped(uow, self.desk, Tap(who, menu_id, None, language), now)
        said = self._said(who, message, language)
        if said is not None:
            await customer.wrote(uow, self.desk, said, now)
        return None

    def _said(self, who: CustomerRef, message: dict[str, Any], language: str) -> Said | None:
        kind = str(message.get("msgtype"))
        common: dict[str, Any] = {
            "who": who,
            "name": self._name(who.id),
            "language": language,
            "ref": str(message.get("msgid")),
        }
        if kind == "text":
            content = str((message.get("text") or {}).get("content") or "")
            return Said(kind="text", text=content, **common)
        if kind in ("image", "voice", "file", "video"):
            media = str((message.get(kind) or {}).get("media_id") or "")
            ours = {"image": "photo", "file": "document"}.get(kind, kind)
            return Said(kind=ours, attachment=Attachment(ours, media, CHANNEL), **common)
        if kind == "location":
            place = message.get("location") or {}
            words = f"{place.get('name', '')} {place.get('address', '')}".strip()
            where = f"{place.get('latitude')},{place.get('longitude')}"
            return Said(kind="location", text=f"{words} ({where})".strip(), **common)
        return Said(kind="other", **common)

    async def _event(self, uow: UnitOfWork, event: dict[str, Any], now: datetime) -> None:
        kind = event.get("event_type")
        user = str(event.get("external_userid") or "")
        if kind == "enter_session":
            code = event.get("welcome_code")
            if code:  # the first answer may go on this event (outside the window's budget)
                self.windows.welcomed(user, str(code), time.time())
            said = Said(
                who=CustomerRef(CHANNEL, user),
                name=self._name(user),
                language=self.settings.default_language,
                text="/start",
            )
            await customer.wrote(uow, self.desk, said, now)
        elif kind == "msg_send_fail":  # WeCom took it, then could not deliver it
            row = _row_of_msgid(str(event.get("fail_msgid") or ""))
            ticket_id = await uow.outbox.ticket_of(row) if row is not None else None
            await customer.refused(
                uow,
                self.desk,
                ticket_id,
                f"WeChat did not deliver a message (fail_type {event.get('fail_type')})",
                now,
            )
        else:
            logger.info("WeCom event %s for %s", kind, user)


def _passing(exc: BaseException) -> bool:
    """A fault that passes: the database, WeCom unreachable or busy."""
    if isinstance(exc, WeComError):
        return exc.errcode in PASSING_ERRORS
    return isinstance(exc, WeComUnavailable | Passing) or passing(exc)


def _event(message: dict[str, Any]) -> dict[str, Any]:
    event = message.get("event")
    return dict(event) if isinstance(event, dict) else {}


def _row_of_msgid(msgid: str) -> int | None:
    """The outbox row a message came from: its msgid is ours (`desk<row>p<piece>`)."""
    match = re.fullmatch(r"desk(\d+)p\d+", msgid)
    return int(match.group(1)) if match else None
