"""The Telegram side of the desk: the staff group's cards, topics and relays both ways."""

from __future__ import annotations

import asyncio
import html
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import (
    InlineKeyboardMarkup,
    InputMediaPhoto,
    InputMediaVideo,
    Message,
    ReplyParameters,
)

from bot import keyboards
from bot.channels.base import Delivery
from bot.domain.clock import SlaPolicy, next_deadline
from bot.domain.tickets import Actor, Ticket, reference
from bot.outbox import Limiter, Priority, send_priority
from bot.policy import Policy
from bot.render import Render
from bot.text import split_text
from storage.repositories import StoredMessage
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CARD_STORY_LIMIT = 1500
DIGEST_RESERVE = 2  # group places kept free in a burst: for the digest and a relay
DIGEST_GATHER = 2.0  # seconds a digest waits for more tickets
DIGEST_LINES = 25  # tickets in one digest message
CAPTIONED = {"photo", "video", "document", "voice", "audio", "animation"}
ALBUM_KINDS = {"photo", "video"}


def _thread_missing(error: TelegramBadRequest) -> bool:
    return "thread not found" in error.message.lower() or "topic_deleted" in error.message.lower()


class TelegramDesk:
    """Posts tickets to the staff group and carries messages between customers and staff."""

    def __init__(
        self,
        bot: Bot,
        staff_chat_id: int,
        policy: Policy,
        render: Render,
        staff_language: str,
        clock: Callable[[], datetime],
        sla: SlaPolicy | None = None,
        limiter: Limiter | None = None,
        new_uow: Callable[[], UnitOfWork] | None = None,
    ) -> None:
        self.sla = sla or SlaPolicy()
        self.bot = bot
        self.staff_chat_id = staff_chat_id
        self.policy = policy
        self.render = render
        self.lang = staff_language
        self.clock = clock
        self.forum: bool | None = None
        self.bot_username: str | None = None  # for links that open a ticket with the bot
        self.limiter = limiter
        self.new_uow = new_uow
        self._posting = 0  # cards on their way now
        self._to_digest: list[int] = []  # tickets waiting for the next digest
        self._to_card: deque[int] = deque()  # tickets listed in a digest, card still to come
        self._digester: asyncio.Task[None] | None = None
        self._carder: asyncio.Task[None] | None = None
        self._relaying: dict[int, asyncio.Lock] = {}

    # -- the staff group -------------------------------------------------------------------

    async def detect_forum(self) -> None:
        """Topics on: each ticket gets its own topic. Asked once at start."""
        try:
            chat = await self.bot.get_chat(self.staff_chat_id)
            self.forum = bool(chat.is_forum)
        except Exception as exc:  # the group may not exist yet; cards then go as replies
            logger.warning("Cannot read the staff group %s: %s", self.staff_chat_id, exc)
            self.forum = False

    async def _ensure_topic(self, uow: UnitOfWork, ticket: Ticket, recreate: bool = False) -> None:
        if not self.forum or (ticket.topic_id and not recreate):
            return
        name = self.render(self.lang, "staff/topic_name.txt", ticket=ticket, policy=self.policy)
        topic = await self.bot.create_forum_topic(self.staff_chat_id, name=name[:128])
        ticket.topic_id = topic.message_thread_id
        await uow.tickets.save(ticket)

    async def to_group(
        self,
        uow: UnitOfWork,
        ticket: Ticket,
        send: Callable[[dict[str, Any]], Awaitable[Any]],
    ) -> Any:
        """Send into the ticket's place in the group: its topic, or as a reply to its card.
        A deleted topic is created again and the message sent there."""
        await self._ensure_topic(uow, ticket)
        for attempt in range(2):
            where: dict[str, Any] = {"chat_id": self.staff_chat_id}
            if self.forum and ticket.topic_id:
                where["message_thread_id"] = ticket.topic_id
            elif ticket.card_message_id:
                where["reply_parameters"] = ReplyParameters(
                    message_id=ticket.card_message_id, allow_sending_without_reply=True
                )
            try:
                result = await send(where)
            except TelegramBadRequest as exc:
                if attempt == 0 and self.forum and _thread_missing(exc):
                    logger.warning("Topic of %s was deleted; creating it again", ticket.reference)
                    await self._ensure_topic(uow, ticket, recreate=True)
                    ticket.card_message_id = None
                    await self.post_card(uow, ticket, with_relay=False)
                    continue
                raise
            await self._link(uow, ticket, result)
            return result
        return None

    async def _link(self, uow: UnitOfWork, ticket: Ticket, result: Any) -> None:
        assert ticket.id is not None
        sent = result if isinstance(result, list) else [result]
        for message in sent:
            if isinstance(message, Message):
                await uow.links.link(self.staff_chat_id, message.message_id, ticket.id)
        await uow.commit()  # a staff reply to it may come at once, from another lane

    def card_text(self, ticket: Ticket) -> str:
        story = "\n".join(ticket.story)
        return self.render(
            self.lang,
            "staff/card.html",
            ticket=ticket,
            policy=self.policy,
            category=self._category(ticket),
            story=story[:CARD_STORY_LIMIT],
            story_cut=len(story) > CARD_STORY_LIMIT,
            tier=self._tier_label(ticket),
            option=self._option_label(ticket),
            severity=self._severity_label(ticket),
            deadline=next_deadline(ticket, self.sla, self.policy.hours),
            repeat=reference(ticket.repeat_of) if ticket.repeat_of else "",
        )

    # -- many tickets at once --------------------------------------------------------------

    async def announce(self, uow: UnitOfWork, ticket: Ticket) -> None:
        """A submitted ticket reaches the group: its card at once while the group has room
        under its limit; in a burst, a digest first (one message for many tickets, each with
        a link that opens it with the bot) and the card as soon as the limit allows."""
        assert ticket.id is not None
        if self.limiter is None or self.new_uow is None:
            await self.post_card(uow, ticket)
            return
        room = self.limiter.free(self.staff_chat_id) - self._posting
        if not self._to_digest and not self._to_card and room > DIGEST_RESERVE:
            self._posting += 1
            try:
                await self.post_card(uow, ticket)
            finally:
                self._posting -= 1
            return
        self._to_digest.append(ticket.id)
        if self._digester is None or self._digester.done():
            self._digester = asyncio.create_task(self._digest_loop())

    async def stop(self) -> None:
        """Stop digesting and carding; what is left is caught up at the next start."""
        tasks = [t for t in (self._digester, self._carder) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def waiting_for_card(self) -> int:
        return len(self._to_digest) + len(self._to_card)

    async def _digest_loop(self) -> None:
        """Every few seconds while tickets pour in: one digest for those that came."""
        assert self.new_uow is not None
        while self._to_digest:
            await asyncio.sleep(DIGEST_GATHER)
            batch, self._to_digest = self._to_digest[:DIGEST_LINES], self._to_digest[DIGEST_LINES:]
            async with self.new_uow() as uow:
                tickets = [t for i in batch if (t := await uow.tickets.get(i)) is not None]
            tickets = [t for t in tickets if t.card_message_id is None]
            if not tickets:
                continue
            token = send_priority.set(Priority.RELAY)  # ahead of the cards it announces
            try:
                await self.bot.send_message(self.staff_chat_id, self.digest_text(tickets))
            except TelegramAPIError as exc:
                logger.error("Digest of %s tickets not sent: %s", len(tickets), exc)
            finally:
                send_priority.reset(token)
            self._to_card.extend(t.id for t in tickets if t.id is not None)
            if self._carder is None or self._carder.done():
                self._carder = asyncio.create_task(self._card_loop())

    async def _card_loop(self) -> None:
        """The cards of digested tickets, one after another, as the group's limit allows."""
        assert self.new_uow is not None
        send_priority.set(Priority.CARD)  # this task's own context: after relays and digests
        while self._to_card:
            ticket_id = self._to_card[0]
            try:
                async with self.new_uow() as uow:
                    ticket = await uow.tickets.get(ticket_id)
                    if ticket is not None and ticket.card_message_id is None:
                        await self.post_card(uow, ticket)
                        await uow.commit()
            except TelegramAPIError as exc:  # posted at the next start (catch-up)
                logger.error("Card of ticket %s not posted: %s", ticket_id, exc)
            finally:
                self._to_card.popleft()

    def digest_text(self, tickets: list[Ticket]) -> str:
        lines = [
            {
                "ticket": ticket,
                "link": self.ticket_link(ticket),
                "category": self._category(ticket),
                "severity": self._severity_label(ticket),
            }
            for ticket in tickets
        ]
        per_minute = self.limiter.group_per_minute if self.limiter else 20
        return self.render(self.lang, "staff/digest.html", lines=lines, per_minute=per_minute)

    def ticket_link(self, ticket: Ticket) -> str | None:
        """A link that opens this ticket in a private chat with the bot (staff only)."""
        if not self.bot_username:
            return None
        return f"https://t.me/{self.bot_username}?start={ticket.reference}"

    async def is_staff(self, user_id: int) -> bool:
        """Whether this person is in the staff group."""
        try:
            member = await self.bot.get_chat_member(self.staff_chat_id, user_id)
        except TelegramAPIError:
            return False
        return member.status in ("creator", "administrator", "member", "restricted")

    # -- cards ---------------------------------------------------------------------------

    async def post_card(self, uow: UnitOfWork, ticket: Ticket, with_relay: bool = True) -> None:
        """The ticket's card (summary and buttons), its photos as an album, and the full story
        when the card could not hold it."""
        assert ticket.id is not None
        await self._ensure_topic(uow, ticket)
        where: dict[str, Any] = {"chat_id": self.staff_chat_id}
        if self.forum and ticket.topic_id:
            where["message_thread_id"] = ticket.topic_id
        # the ticket as submitted is stored first: staff may answer the card at once, from
        # another lane, before its id is stored (`handlers.staff.relay.ticket_of` copes)
        await uow.commit()
        card = await self.bot.send_message(
            text=self.card_text(ticket),
            reply_markup=keyboards.card(ticket, self.policy.ladder, self.lang),
            **where,
        )
        ticket.card_message_id = card.message_id
        await uow.tickets.save(ticket)
        await uow.links.link(self.staff_chat_id, card.message_id, ticket.id)
        await uow.commit()
        if ticket.photos:
            await self.to_group(uow, ticket, lambda w: self._send_photos(ticket.photos, w))
        story = "\n".join(ticket.story)
        if len(story) > CARD_STORY_LIMIT:
            header = self.render(self.lang, "staff/story_full.html", ticket=ticket)
            for chunk in split_text(story, TEXT_LIMIT - len(header) - 2):
                text = f"{header}\n{_escape(chunk)}"
                await self.to_group(
                    uow, ticket, lambda w, t=text: self.bot.send_message(text=t, **w)
                )
        if with_relay:
            await self.relay_pending(uow, ticket)

    async def _send_photos(self, photos: list[str], where: dict[str, Any]) -> Any:
        if len(photos) == 1:
            return await self.bot.send_photo(photo=photos[0], **where)
        media = [InputMediaPhoto(media=file_id) for file_id in photos[:10]]
        return await self.bot.send_media_group(media=media, **where)

    async def refresh_card(self, ticket: Ticket) -> None:
        """Show the ticket's new state on its card (a same-content edit is harmless)."""
        if not ticket.card_message_id:
            return
        try:
            await self.bot.edit_message_text(
                chat_id=self.staff_chat_id,
                message_id=ticket.card_message_id,
                text=self.card_text(ticket),
                reply_markup=keyboards.card(ticket, self.policy.ladder, self.lang),
            )
        except TelegramBadRequest as exc:
            if "not modified" not in exc.message:
                logger.warning("Card of %s not edited: %s", ticket.reference, exc.message)

    async def tell_group(
        self,
        uow: UnitOfWork,
        ticket: Ticket,
        template: str,
        reply_markup: InlineKeyboardMarkup | None = None,
        **context: Any,
    ) -> Message | None:
        text = self.render(self.lang, template, ticket=ticket, policy=self.policy, **context)
        return await self.to_group(
            uow,
            ticket,
            lambda w: self.bot.send_message(text=text, reply_markup=reply_markup, **w),
        )

    async def alert_early(
        self, uow: UnitOfWork, ticket: Ticket, managers: list[Actor], words: list[str]
    ) -> None:
        """Alarm words before the ticket has a card: a message of its own, linked to it."""
        assert ticket.id is not None
        text = self.render(
            self.lang, "staff/critical_early.html", ticket=ticket, managers=managers, words=words
        )
        sent = await self.bot.send_message(self.staff_chat_id, text)
        # replies to the alert reach the customer; the card comes when the intake ends
        await uow.links.link(self.staff_chat_id, sent.message_id, ticket.id)

    # -- customer -> group -----------------------------------------------------------------

    async def relay_pending(self, uow: UnitOfWork, ticket: Ticket) -> None:
        """Show staff every stored customer message of this ticket they have not seen yet,
        in order; photos and videos that came as one album go as one album."""
        assert ticket.id is not None
        if ticket.card_message_id is None:
            return
        # one at a time per ticket (the customer's lane, a card posted later, the catch-up):
        # what one has shown, the other reads as shown
        lock = self._relaying.setdefault(ticket.id, asyncio.Lock())
        try:
            async with lock:
                await self._relay_pending(uow, ticket)
        finally:
            if not lock.locked() and self._relaying.get(ticket.id) is lock:
                del self._relaying[ticket.id]

    async def _relay_pending(self, uow: UnitOfWork, ticket: Ticket) -> None:
        assert ticket.id is not None
        pending = await uow.messages.pending_relay(ticket.id)
        if not pending:
            return
        header = self.render(self.lang, "staff/customer_header.html", ticket=ticket)
        index = 0
        while index < len(pending):
            batch = [pending[index]]
            group = pending[index].media_group_id
            if group and pending[index].kind in ALBUM_KINDS:
                while (
                    index + len(batch) < len(pending)
                    and pending[index + len(batch)].media_group_id == group
                    and len(batch) < 10
                ):
                    batch.append(pending[index + len(batch)])
            await self._relay_batch(uow, ticket, header, batch)
            await uow.messages.mark_relayed([m.id for m in batch])
            await uow.commit()
            index += len(batch)

    async def _relay_batch(
        self, uow: UnitOfWork, ticket: Ticket, header: str, batch: list[StoredMessage]
    ) -> None:
        first = batch[0]
        if len(batch) > 1:
            media: list[Any] = []
            for i, item in enumerate(batch):
                caption = _caption(header, item.text) if i == 0 else _escape(item.text or "")
                cls = InputMediaPhoto if item.kind == "photo" else InputMediaVideo
                media.append(cls(media=item.file_id or "", caption=caption or None))
            await self.to_group(uow, ticket, lambda w: self.bot.send_media_group(media=media, **w))
            return
        if first.kind in CAPTIONED and first.file_id:
            sender = getattr(self.bot, f"send_{first.kind}")
            text = first.text or ""
            caption = _caption(header, text)
            if len(caption) > CAPTION_LIMIT:
                await self.to_group(
                    uow,
                    ticket,
                    lambda w: sender(**{first.kind: first.file_id}, caption=header, **w),
                )
                await self._relay_text(uow, ticket, header, text)
            else:
                await self.to_group(
                    uow,
                    ticket,
                    lambda w: sender(**{first.kind: first.file_id}, caption=caption, **w),
                )
            return
        if first.kind == "sticker" and first.file_id:
            await self._relay_text(uow, ticket, header, first.text or "")
            await self.to_group(
                uow, ticket, lambda w: self.bot.send_sticker(sticker=first.file_id, **w)
            )
            return
        if first.kind == "video_note" and first.file_id:
            await self._relay_text(uow, ticket, header, "")
            await self.to_group(
                uow, ticket, lambda w: self.bot.send_video_note(video_note=first.file_id, **w)
            )
            return
        await self._relay_text(uow, ticket, header, first.text or "")

    async def _relay_text(self, uow: UnitOfWork, ticket: Ticket, header: str, text: str) -> None:
        for chunk in split_text(text, TEXT_LIMIT - len(header) - 2) or [""]:
            body = f"{header}\n{_escape(chunk)}" if chunk else header
            await self.to_group(uow, ticket, lambda w, b=body: self.bot.send_message(text=b, **w))

    # -- staff -> customer -----------------------------------------------------------------

    async def relay_to_customer(
        self, uow: UnitOfWork, ticket: Ticket, staff: Actor, message: Message
    ) -> Delivery:
        """Carry a staff member's reply to the customer, signed with their first name."""
        signature = self.render(
            ticket.language, "customer/staff_signature.html", name=staff.name, policy=self.policy
        )
        kind = message_kind(message)
        text = message.text or message.caption or ""

        async def send() -> None:
            if kind == "text":
                for chunk in split_text(text, TEXT_LIMIT - len(signature) - 2):
                    await self.bot.send_message(
                        ticket.customer_id, f"{signature}\n{_escape(chunk)}"
                    )
            elif kind in CAPTIONED:
                sender = getattr(self.bot, f"send_{kind}")
                caption = f"{signature}\n{_escape(text)}" if text else signature
                if len(caption) > CAPTION_LIMIT:
                    await sender(ticket.customer_id, file_id_of(message), caption=signature)
                    for chunk in split_text(text, TEXT_LIMIT - len(signature) - 2):
                        await self.bot.send_message(
                            ticket.customer_id, f"{signature}\n{_escape(chunk)}"
                        )
                else:
                    await sender(ticket.customer_id, file_id_of(message), caption=caption)
            else:
                await self.bot.send_message(ticket.customer_id, signature)
                await self.bot.copy_message(
                    ticket.customer_id, message.chat.id, message.message_id
                )

        return await self.deliver(uow, ticket, send)

    async def tell_customer(
        self,
        uow: UnitOfWork,
        ticket: Ticket,
        template: str,
        reply_markup: InlineKeyboardMarkup | None = None,
        **context: Any,
    ) -> Delivery:
        text = self.render(ticket.language, template, ticket=ticket, policy=self.policy, **context)

        async def send() -> None:
            await self.bot.send_message(ticket.customer_id, text, reply_markup=reply_markup)

        return await self.deliver(uow, ticket, send)

    async def deliver(
        self, uow: UnitOfWork, ticket: Ticket, send: Callable[[], Awaitable[None]]
    ) -> Delivery:
        """Send to the customer; a customer who blocked the bot is marked, and staff are told."""
        try:
            await send()
        except TelegramForbiddenError as exc:
            logger.info("%s: customer unreachable: %s", ticket.reference, exc.message)
            ticket.mark_undeliverable(self.clock(), exc.message)
            await uow.tickets.save(ticket)
            await self.tell_group(uow, ticket, "staff/undeliverable.html")
            await self.refresh_card(ticket)
            return Delivery.BLOCKED
        except TelegramBadRequest as exc:
            logger.warning("%s: message refused: %s", ticket.reference, exc.message)
            await self.tell_group(uow, ticket, "staff/refused.html", reason=exc.message)
            return Delivery.FAILED
        if ticket.customer_blocked:
            ticket.mark_reachable()
            await uow.tickets.save(ticket)
        return Delivery.SENT

    # -- labels ----------------------------------------------------------------------------

    def _category(self, ticket: Ticket) -> str:
        category = self.policy.intake.category(ticket.category or "")
        return category.label.in_(self.lang) if category else "—"

    def _tier_label(self, ticket: Ticket) -> str:
        if not ticket.tier:
            return ""
        return self.policy.ladder.tier(ticket.tier).label.in_(self.lang)

    def _option_label(self, ticket: Ticket) -> str:
        if not ticket.tier or ticket.chosen_option is None:
            return ""
        tier = self.policy.ladder.tier(ticket.tier)
        return tier.option(ticket.chosen_option).label.in_(self.lang)

    def _severity_label(self, ticket: Ticket) -> str:
        if not ticket.severity:
            return ""
        return self.policy.ladder.tier(ticket.severity).label.in_(self.lang)


KINDS = (
    "text",
    "photo",
    "video",
    "document",
    "voice",
    "audio",
    "animation",
    "sticker",
    "video_note",
    "contact",
    "location",
)


def message_kind(message: Message) -> str:
    return next((kind for kind in KINDS if getattr(message, kind, None)), "other")


def file_id_of(message: Message) -> str | None:
    if message.photo:
        return message.photo[-1].file_id
    for kind in ("video", "document", "voice", "audio", "animation", "sticker", "video_note"):
        item = getattr(message, kind, None)
        if item is not None:
            return str(item.file_id)
    return None


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def _caption(header: str, text: str | None) -> str:
    return f"{header}\n{_escape(text)}" if text else header
