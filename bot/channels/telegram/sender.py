"""Delivering the outbox on Telegram: to customers' private chats, and into the staff group
(cards, topics, threads). Every request waits for its place in the limiter (Telegram's flood
limits), a 429 waits `retry_after` and goes again, 5xx and network errors are retried with
back-off; python-telegram-bot raises these and retries nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

import httpx
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    InputMediaPhoto,
    InputMediaVideo,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
    WebAppInfo,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.channels.base import Delivery, Outcome, Passing, Refresh, Unsure
from bot.channels.telegram.limiter import Limiter
from bot.domain.messages import Attachment, Choice, Outgoing, Say, Urgency
from bot.domain.tickets import Ticket
from bot.render import Render
from storage.outbox import CARD, CARD_EDIT, CLEAR, RELAY, ROOM

logger = logging.getLogger(__name__)
T = TypeVar("T")

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CAPTIONED = {"photo", "video", "document", "voice", "audio", "animation"}
ALBUM_KINDS = {"photo", "video"}
ATTEMPTS = 6
RECENT_TOPICS = 1000


def retry_after_seconds(exc: RetryAfter) -> float:
    value = getattr(exc, "_retry_after", None)  # a timedelta; the property warns about ints
    return value.total_seconds() if value is not None else 1.0


class Api:
    """Every Bot API call of the desk: through the limiter, retried as Telegram asks. Files
    another messenger holds (a WeChat customer's photo) are fetched from it and uploaded."""

    def __init__(self, bot: Bot, limiter: Limiter | None) -> None:
        self.bot = bot
        self.limiter = limiter
        self.fetchers: dict[str, Callable[[Attachment], Awaitable[bytes]]] = {}
        self.backoff_first, self.backoff_most = 0.5, 8.0  # between tries after a 5xx

    async def file(self, attachment: Attachment) -> Any:
        """What to hand Telegram for this file: its file_id, or the bytes from elsewhere."""
        if attachment.channel == "telegram":
            return attachment.ref
        fetch = self.fetchers.get(attachment.channel)
        if fetch is None:
            raise BadRequest(f"no way to fetch a {attachment.channel} file")
        name = attachment.name or (
            "photo.jpg" if attachment.kind == "photo" else f"{attachment.kind}.bin"
        )
        return InputFile(await fetch(attachment), filename=name)

    async def download(self, attachment: Attachment) -> bytes:
        """A Telegram file's bytes (a staff member's photo for a WeChat customer)."""
        try:
            file = await self.bot.get_file(attachment.ref)
            return bytes(await file.download_as_bytearray())
        except (BadRequest, Forbidden):
            raise
        except NetworkError as exc:  # a download is safe to ask again
            raise Passing(f"Telegram file not fetched: {exc}") from exc

    async def call(
        self,
        chat_id: int | None,
        request: Callable[[], Awaitable[T]],
        urgency: Urgency = Urgency.CARD,
        lane: Hashable | None = None,
        granted: bool = False,
    ) -> T:
        """Send one request counted against `chat_id`'s windows (None: not a message).
        `granted`: the first place was already taken (the caller waited for it)."""
        backoff = self.backoff_first
        limited = chat_id is not None and self.limiter is not None
        for attempt in range(1, ATTEMPTS + 1):
            if limited and not (granted and attempt == 1):
                assert self.limiter is not None and chat_id is not None
                await self.limiter.acquire(chat_id, urgency, lane)
            try:
                try:
                    return await request()
                finally:
                    if limited:
                        assert self.limiter is not None and chat_id is not None
                        self.limiter.done(chat_id)  # it counts from Telegram's answer
            except RetryAfter as exc:
                if attempt == ATTEMPTS:
                    raise Passing(f"429 from Telegram, {ATTEMPTS} times") from exc
                wait = retry_after_seconds(exc)
                logger.info("429 for chat %s: waiting %ss", chat_id, wait)
                if limited:
                    assert self.limiter is not None and chat_id is not None
                    self.limiter.penalize(chat_id, wait)
                else:
                    await asyncio.sleep(wait)
            except (BadRequest, Forbidden):
                raise
            except TimedOut as exc:
                if _may_have_arrived(exc):  # Telegram may have it: not sent again
                    raise Unsure(f"no answer from Telegram in time ({exc})") from exc
                if attempt == ATTEMPTS:
                    raise Passing(f"Telegram unreachable: {exc}") from exc
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_most)
            except NetworkError as exc:  # 5xx, connection errors
                if _may_have_arrived(exc):  # the connection broke after the request went
                    raise Unsure(f"Telegram's answer was lost ({exc})") from exc
                if attempt == ATTEMPTS:
                    raise Passing(f"Telegram unreachable: {exc}") from exc
                logger.info("%s for chat %s: retry in %.1fs", exc, chat_id, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_most)
        raise AssertionError("unreachable")  # pragma: no cover


def _may_have_arrived(exc: NetworkError) -> bool:
    """A timeout, or a connection broken, after the request went out (no answer read):
    Telegram may have acted on it. One before it went out (no connection, no free connection)
    is safe to send again, and so is a 5xx, which Telegram answers without acting."""
    cause = exc.__cause__
    if isinstance(exc, TimedOut):
        return not isinstance(cause, httpx.ConnectTimeout | httpx.PoolTimeout)
    return isinstance(cause, httpx.TransportError) and not isinstance(
        cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
    )


INLINE = ("tap", "page", "link")  # choices shown as buttons under the message


def inline_button(choice: Choice) -> InlineKeyboardButton:
    """A button under the message: a tap comes back as a callback; a page opens as a Mini App
    (`web_app`: Telegram allows it only in a private chat, and only over https); a link opens
    its URL."""
    if choice.kind == "page":
        return InlineKeyboardButton(choice.label, web_app=WebAppInfo(choice.key))
    if choice.kind == "link":
        return InlineKeyboardButton(choice.label, url=choice.key)
    return InlineKeyboardButton(choice.label, callback_data=choice.key)


def markup(say: Say) -> Any:
    """Choices as Telegram shows them: buttons under the message, or ready answers (with the
    phone number's button) in place of the keyboard."""
    rows = say.choices
    if rows and all(c.kind in INLINE for row in rows for c in row):
        return InlineKeyboardMarkup([[inline_button(c) for c in row] for row in rows])
    if rows:
        return ReplyKeyboardMarkup(
            [
                [KeyboardButton(c.label, request_contact=c.kind == "phone") for c in row]
                for row in rows
            ],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    if say.clear_choices:
        return ReplyKeyboardRemove()
    return None


def _ids(result: Any) -> list[str]:
    sent = result if isinstance(result, list | tuple) else [result]
    return [str(m.message_id) for m in sent if isinstance(m, Message)]


async def send_say(
    api: Api,
    chat_id: int,
    say: Say,
    urgency: Urgency,
    lane: Hashable,
    where: dict[str, Any] | None = None,
    granted: bool = False,
) -> list[str]:
    """One `Say` as Telegram messages: text with its choices, or a file with its caption (a
    caption too long goes as a text of its own). Returns the message ids."""
    bot = api.bot
    where = where or {}
    reply_markup = markup(say)
    ids: list[str] = []

    async def go(request: Callable[[], Awaitable[Any]]) -> None:
        nonlocal granted
        try:
            ids.extend(_ids(await api.call(chat_id, request, urgency, lane, granted)))
        finally:
            granted = False  # the place given was used

    if len(say.attachments) > 1:  # an album (its words as the first item's caption)
        media = [
            (InputMediaPhoto if item.kind == "photo" else InputMediaVideo)(
                await api.file(item),
                caption=say.text if index == 0 and say.text else None,
                parse_mode=ParseMode.HTML,
            )
            for index, item in enumerate(say.attachments[:10])
        ]
        await go(lambda: bot.send_media_group(chat_id, media, **where))
        return ids
    attachment = say.attachments[0] if say.attachments else None
    # texts come cut to Telegram's length already (the limit counts the text after its HTML is
    # parsed, so it cannot be checked here)
    if attachment is None:
        await go(
            lambda: bot.send_message(
                chat_id, say.text, parse_mode=ParseMode.HTML, reply_markup=reply_markup, **where
            )
        )
        return ids
    document = await api.file(attachment)
    if attachment.kind in CAPTIONED and len(say.text) <= CAPTION_LIMIT:
        sender = getattr(bot, f"send_{attachment.kind}")
        await go(
            lambda: sender(
                chat_id,
                document,
                caption=say.text or None,
                parse_mode=ParseMode.HTML,
                reply_markup=reply_markup,
                **where,
            )
        )
        return ids
    if say.text:  # the words first, then the thing itself
        try:
            await go(
                lambda: bot.send_message(chat_id, say.text, parse_mode=ParseMode.HTML, **where)
            )
        except Unsure:  # the words may be there: the thing itself still goes
            logger.warning(
                "Words before a %s to %s may not have arrived", attachment.kind, chat_id
            )
    await go(lambda: _send_file(bot, chat_id, attachment.kind, document, reply_markup, where))
    return ids


async def _send_file(
    bot: Bot, chat_id: int, kind: str, document: Any, reply_markup: Any, where: dict[str, Any]
) -> Message:
    sender = getattr(bot, f"send_{kind}", None)
    if sender is None:
        raise BadRequest(f"cannot send a {kind}")
    return await sender(chat_id, document, reply_markup=reply_markup, **where)  # type: ignore[no-any-return]


def _refused(exc: TelegramError) -> Outcome:
    return Outcome(Delivery.FAILED, detail=exc.message)


class CustomerChats:
    """The customer channel on Telegram: a customer's private chat with the bot."""

    name = "telegram"

    def __init__(self, api: Api) -> None:
        self.api = api

    async def deliver(self, rows: list[Outgoing], refresh: Refresh) -> Outcome:
        head = rows[0]
        chat_id = int(head.recipient)
        try:
            if head.kind == CLEAR:
                await clear_buttons(self.api, chat_id, int(head.payload["message"]), head.lane)
                return Outcome(Delivery.SENT, [head.id])
            ids = await send_say(self.api, chat_id, head.say, head.urgency, head.lane)
        except Forbidden as exc:
            return Outcome(Delivery.BLOCKED, [head.id], detail=exc.message)
        except BadRequest as exc:
            logger.warning("Message to %s refused: %s", chat_id, exc.message)
            return Outcome(Delivery.FAILED, [head.id], detail=exc.message)
        return Outcome(Delivery.SENT, [head.id], message_ids=ids)


async def clear_buttons(api: Api, chat_id: int, message_id: int, lane: Hashable) -> None:
    """Take the buttons off a message (an old one may no longer be editable: harmless)."""
    try:
        await api.call(
            chat_id,
            lambda: api.bot.edit_message_reply_markup(chat_id, message_id, reply_markup=None),
            Urgency.REPORT,
            lane,
        )
    except BadRequest as exc:
        logger.debug("Buttons not removed: %s", exc.message)


def _thread_missing(error: BadRequest) -> bool:
    text = error.message.lower()
    return "thread not found" in text or "topic_deleted" in text


class StaffGroup:
    """The staff room on Telegram: a group (a forum gets a topic per ticket) where each ticket
    has its card, and its thread is the card's replies or its topic."""

    def __init__(
        self,
        api: Api,
        chat_id: int,
        render: Render,
        language: str,
        card_of: Callable[[Ticket], Say],
        describe: Callable[[Ticket], tuple[str, str]] = lambda t: ("", ""),
    ) -> None:
        self.describe = describe  # a ticket's category and severity, for the digest
        self.api = api
        self.chat_id = chat_id
        self.render = render
        self.language = language
        self.card_of = card_of
        self.forum = False
        self.digest: Digest | None = None
        self._last_relay: dict[Hashable, float] = {}  # when each ticket's last text relay went
        self.topics: dict[int, int] = {}  # topics made lately, and their tickets
        self._made: dict[int, int] = {}  # tickets' topics made lately

    async def detect_forum(self) -> None:
        """Topics on: each ticket gets its own topic. Asked once at start."""
        try:
            chat = await self.api.bot.get_chat(self.chat_id)
            self.forum = bool(chat.is_forum)
        except TelegramError as exc:  # the group may not exist yet; cards then go as replies
            logger.warning("Cannot read the staff group %s: %s", self.chat_id, exc)
            self.forum = False

    async def deliver(
        self, rows: list[Outgoing], ticket: Ticket | None, refresh: Refresh
    ) -> Outcome:
        head = rows[0]
        try:
            return await self._deliver(head, rows, ticket, refresh)
        except BadRequest as exc:
            logger.warning("Staff group refused %s: %s", head.kind, exc.message)
            return Outcome(Delivery.FAILED, [head.id], detail=exc.message)
        except Forbidden as exc:
            logger.error("The bot cannot write to the staff group: %s", exc.message)
            return Outcome(Delivery.FAILED, [head.id], detail=exc.message)

    async def _deliver(
        self, head: Outgoing, rows: list[Outgoing], ticket: Ticket | None, refresh: Refresh
    ) -> Outcome:
        lane = head.lane
        if head.kind == ROOM or ticket is None:
            ids = await send_say(self.api, self.chat_id, head.say, head.urgency, lane)
            return self._sent([head.id], ids)
        if head.kind == CLEAR:
            await clear_buttons(self.api, self.chat_id, int(head.payload["message"]), lane)
            return Outcome(Delivery.SENT, [head.id])
        if head.kind == CARD:
            return await self._post_card(head, ticket)
        if head.kind == CARD_EDIT:
            await self._edit_card(head, ticket)
            return Outcome(Delivery.SENT, [head.id])
        if head.kind == RELAY:
            return await self._relay(head, rows, ticket, refresh)
        reply_to = head.payload.get("reply_to")
        ids, topic = await self._to_thread(ticket, head.say, head.urgency, lane, reply_to)
        return self._sent([head.id], ids, topic)

    def _sent(self, rows: list[int], ids: list[str], topic: int | None = None) -> Outcome:
        return Outcome(Delivery.SENT, rows, ids, topic_id=topic, room_id=self.chat_id)

    # -- where a ticket's messages go ------------------------------------------------------

    def _where(self, ticket: Ticket, reply_to: str | None = None) -> dict[str, Any]:
        if self.forum and ticket.topic_id:
            where: dict[str, Any] = {"message_thread_id": ticket.topic_id}
            if reply_to:
                where["reply_parameters"] = ReplyParameters(
                    int(reply_to), allow_sending_without_reply=True
                )
            return where
        target = reply_to or (str(ticket.card_message_id) if ticket.card_message_id else None)
        if target:
            return {
                "reply_parameters": ReplyParameters(int(target), allow_sending_without_reply=True)
            }
        return {}

    async def _new_topic(self, ticket: Ticket, again: bool = False) -> int:
        """The ticket's topic. One made a moment ago whose id the sender has not recorded yet
        (its first message failed) is used again, unless it was deleted (`again`)."""
        made = self._made.get(ticket.id or 0)
        if made is not None and not again:
            ticket.topic_id = made
            return made
        name = self.render(self.language, "staff/topic_name.txt", ticket=ticket)
        try:
            topic = await self.api.call(
                self.chat_id,
                lambda: self.api.bot.create_forum_topic(self.chat_id, name[:128]),
                Urgency.CARD,
                f"staff:t{ticket.id}",
            )
        except Unsure as exc:  # the row's own message is still to come: try it all again
            raise Passing(f"no answer about the topic of {ticket.reference}") from exc
        ticket.topic_id = topic.message_thread_id
        if ticket.id is not None:  # known at once, before the sender has recorded it
            self.topics[topic.message_thread_id] = ticket.id
            self._made[ticket.id] = topic.message_thread_id
            for recent in (self.topics, self._made):  # the database has them: keep a few
                while len(recent) > RECENT_TOPICS:
                    del recent[next(iter(recent))]
        return topic.message_thread_id

    async def _to_thread(
        self,
        ticket: Ticket,
        say: Say,
        urgency: Urgency,
        lane: Hashable,
        reply_to: str | None = None,
        granted: bool = False,
    ) -> tuple[list[str], int | None]:
        """Send into the ticket's thread. A deleted topic is made again, with the card."""
        topic = None
        if self.forum and not ticket.topic_id:
            topic = await self._new_topic(ticket)
        try:
            ids = await send_say(
                self.api, self.chat_id, say, urgency, lane, self._where(ticket, reply_to), granted
            )
        except BadRequest as exc:
            if not (self.forum and _thread_missing(exc)):
                raise
            logger.warning("Topic of %s was deleted; making it again", ticket.reference)
            topic = await self._new_topic(ticket, again=True)
            card = self.card_of(ticket)
            card_ids = await send_say(
                self.api, self.chat_id, card, Urgency.CARD, lane, self._where(ticket)
            )
            ticket.card_message_id = int(card_ids[0]) if card_ids else ticket.card_message_id
            ids = card_ids + await send_say(
                self.api, self.chat_id, say, urgency, lane, self._where(ticket)
            )
        return ids, topic

    # -- cards -----------------------------------------------------------------------------

    async def _post_card(self, head: Outgoing, ticket: Ticket) -> Outcome:
        """The card (summary and buttons): its photos and the rest of the story follow as
        rows of their own."""
        if self.digest is not None:
            await self.digest.wait_turn(ticket)
        topic = await self._new_topic(ticket) if self.forum and not ticket.topic_id else None
        card_ids = await send_say(
            self.api, self.chat_id, head.say, head.urgency, head.lane, self._where(ticket)
        )
        if self.digest is not None:
            self.digest.posted(ticket)
        ticket.card_message_id = int(card_ids[0])
        outcome = self._sent([head.id], card_ids, topic)
        outcome.card_id = ticket.card_message_id
        return outcome

    async def _edit_card(self, head: Outgoing, ticket: Ticket) -> None:
        """Show the ticket's new state on its card (a same-content edit is harmless)."""
        if not ticket.card_message_id:
            return
        say = head.say
        card_id = ticket.card_message_id
        try:
            await self.api.call(
                self.chat_id,
                lambda: self.api.bot.edit_message_text(
                    say.text,
                    chat_id=self.chat_id,
                    message_id=card_id,
                    parse_mode=ParseMode.HTML,
                    reply_markup=markup(say) or InlineKeyboardMarkup([]),
                ),
                head.urgency,
                head.lane,
            )
        except BadRequest as exc:
            if "not modified" not in exc.message:
                logger.warning("Card of %s not edited: %s", ticket.reference, exc.message)

    # -- customer -> group -----------------------------------------------------------------

    async def _relay(
        self, head: Outgoing, rows: list[Outgoing], ticket: Ticket, refresh: Refresh
    ) -> Outcome:
        """A customer's message in the ticket's thread. Photos of one album go as one album;
        texts that waited for the group's place go as one message (saying how many)."""
        lane = head.lane
        album = head.payload.get("album")
        if album and head.say.attachments and head.say.attachments[0].kind in ALBUM_KINDS:
            batch = [head]
            for row in rows[1:]:
                if row.kind != RELAY or row.payload.get("album") != album or len(batch) == 10:
                    break
                if not row.say.attachments or row.say.attachments[0].kind not in ALBUM_KINDS:
                    break
                batch.append(row)
            if len(batch) > 1:
                return await self._send_album(batch, ticket)
        if not head.payload.get("merge"):
            ids, topic = await self._to_thread(ticket, head.say, head.urgency, lane)
            return self._sent([head.id], ids, topic)
        # one ticket takes at most its share of the group: its texts go at most once a pace,
        # and what came meanwhile goes in the same message (a flood cannot starve the others)
        assert self.api.limiter is not None
        pace = 2 * 60.0 / self.api.limiter.group_per_minute
        wait = self._last_relay.get(lane, -pace) + pace - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await self.api.limiter.acquire(self.chat_id, head.urgency, lane)
        self._last_relay[lane] = time.monotonic()
        if len(self._last_relay) > 4096:  # tickets gone quiet
            self._last_relay = {
                k: v for k, v in self._last_relay.items() if v > time.monotonic() - pace
            }
        try:
            fresh = await refresh()
        except BaseException:
            self.api.limiter.release(self.chat_id)
            raise
        batch = [fresh[0]] if fresh and fresh[0].id == head.id else [head]
        header, body = batch[0].payload["merge"]
        bodies = [body]
        for row in fresh[1:]:
            merge = row.payload.get("merge") if row.kind == RELAY else None
            if not merge or row.say.attachments:
                break
            if len(header) + 30 + sum(len(b) + 2 for b in [*bodies, merge[1]]) > TEXT_LIMIT:
                break
            batch.append(row)
            bodies.append(merge[1])
        if len(batch) == 1:
            say = batch[0].say
        else:
            count = self.render(self.language, "staff/merged_count.txt", count=len(batch))
            say = Say(f"{header} {count}\n" + "\n".join(bodies))
        try:
            ids, topic = await self._to_thread(ticket, say, head.urgency, lane, granted=True)
        except Unsure as exc:  # all the merged rows may be there
            exc.rows = [r.id for r in batch]
            raise
        return self._sent([r.id for r in batch], ids, topic)

    async def _send_album(self, batch: list[Outgoing], ticket: Ticket) -> Outcome:
        head = batch[0]
        media: list[Any] = []
        for row in batch:
            item = row.say.attachments[0]
            cls = InputMediaPhoto if item.kind == "photo" else InputMediaVideo
            caption = row.say.text if row is head else None
            file = await self.api.file(item)
            media.append(cls(file, caption=caption, parse_mode=ParseMode.HTML))
        topic = await self._new_topic(ticket) if self.forum and not ticket.topic_id else None
        where = self._where(ticket)
        try:
            result = await self.api.call(
                self.chat_id,
                lambda: self.api.bot.send_media_group(self.chat_id, media, **where),
                head.urgency,
                head.lane,
            )
        except Unsure as exc:  # the whole album may be there
            exc.rows = [r.id for r in batch]
            raise
        return self._sent([r.id for r in batch], _ids(result), topic)


class Digest:
    """Many tickets at once: while cards wait for the group's place, one message every few
    seconds lists them, each a link that opens the ticket in a private chat with the bot."""

    def __init__(self, group: StaffGroup, limiter: Limiter, gather: float = 2.0) -> None:
        self.group = group
        self.limiter = limiter
        self.gather = gather
        self.bot_username: str | None = None
        self._waiting: dict[int, Ticket] = {}
        self._listed: set[int] = set()
        self._sent: dict[int, asyncio.Event] = {}  # set once the digest listing it has gone
        self._task: asyncio.Task[None] | None = None
        self.reserve = 2  # places kept for the digest itself and a relay

    async def wait_turn(self, ticket: Ticket) -> None:
        """A card is about to be posted. While the group has room it goes at once; when busy,
        the ticket is listed in the next digest and its card waits until that has gone."""
        assert ticket.id is not None
        if ticket.id in self._listed:
            return
        busy = self.limiter.free(self.group.chat_id) <= self.reserve or self._waiting
        if not busy:
            return
        self._waiting[ticket.id] = ticket
        listed = self._sent.setdefault(ticket.id, asyncio.Event())
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())
        await listed.wait()

    def posted(self, ticket: Ticket) -> None:
        if ticket.id is not None:
            self._waiting.pop(ticket.id, None)
            self._listed.discard(ticket.id)  # its card is out: nothing more to wait for

    def link(self, ticket: Ticket) -> str | None:
        if not self.bot_username:
            return None
        return f"https://t.me/{self.bot_username}?start={ticket.reference}"

    async def _loop(self) -> None:
        while self._waiting:
            await asyncio.sleep(self.gather)
            tickets = list(self._waiting.values())[:25]
            if not tickets:
                continue
            for ticket in tickets:
                self._waiting.pop(ticket.id or 0, None)
                self._listed.add(ticket.id or 0)
            text = self.text(tickets)
            try:
                await send_say(
                    self.group.api, self.group.chat_id, Say(text), Urgency.RELAY, "staff:digest"
                )
            except (TelegramError, Passing) as exc:  # the cards themselves still follow
                logger.error("Digest of %s tickets not sent: %s", len(tickets), exc)
            for ticket in tickets:
                event = self._sent.pop(ticket.id or 0, None)
                if event is not None:
                    event.set()

    def text(self, tickets: list[Ticket]) -> str:
        lang = self.group.language
        lines = []
        for ticket in tickets:
            category, severity = self.group.describe(ticket)
            lines.append(
                {
                    "ticket": ticket,
                    "link": self.link(ticket),
                    "category": category,
                    "severity": severity,
                }
            )
        return self.group.render(
            lang, "staff/digest.html", lines=lines, per_minute=self.limiter.group_per_minute
        )

    async def stop(self) -> None:
        for event in self._sent.values():  # cards waiting for a digest go as they are
            event.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
