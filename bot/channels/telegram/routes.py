"""Telegram updates into the desk's use cases: who is speaking (a customer in a private chat,
staff or a manager in the staff group), what they said or tapped, as plain data. Nothing here
decides anything about a complaint."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

from telegram import Bot, CallbackQuery, ChatMemberUpdated, Message, Update, User
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.channels.base import Passing
from bot.domain.messages import FILE_KINDS, Answer, Attachment, Said, Say, StaffSaid, Tap, Urgency
from bot.domain.tickets import Actor, CustomerRef, Ticket
from bot.render import language_of
from handlers import customer, manager, staff
from handlers.choices import Key
from handlers.context import Desk
from storage.uow import NewUnitOfWork, UnitOfWork

logger = logging.getLogger(__name__)

CHANNEL = "telegram"
KINDS = ("text", *FILE_KINDS, "contact", "location")
DEEP_LINK = re.compile(r"^/start(@\w+)?\s+(T-\d{6,})$")
# `/dashboard`, or the start link a group answer carries for a manager who never started a chat
# with the bot (`https://t.me/<bot>?start=dashboard`)
DASHBOARD = re.compile(r"^(/dashboard(@\w+)?|/start(@\w+)?\s+dashboard)$", re.IGNORECASE)
AfterCommit = Callable[[], Awaitable[None]]
LINK_GRACE = 30.0  # seconds a reply to a fresh, unlinked message of the desk's waits for its link


class LinkPending(Passing):
    """A reply to a message of the desk's whose link to a ticket is not recorded yet."""


def kind_of(message: Message) -> str:
    return next((kind for kind in KINDS if getattr(message, kind, None)), "other")


def attachment_of(message: Message) -> Attachment | None:
    if message.photo:
        return Attachment("photo", message.photo[-1].file_id)
    for kind in FILE_KINDS:
        item = getattr(message, kind, None)
        if item is not None and kind != "photo":
            return Attachment(kind, str(item.file_id))
    return None


def text_of(message: Message) -> str | None:
    if message.sticker:
        return message.sticker.emoji
    if message.location:
        return f"{message.location.latitude},{message.location.longitude}"
    return message.text or message.caption


def customer_of(user: User) -> CustomerRef:
    return CustomerRef(CHANNEL, str(user.id))


def said_by_customer(message: Message, default_language: str) -> Said | None:
    """A customer's message in their private chat, as the desk keeps it."""
    user = message.from_user
    if user is None or user.is_bot:
        return None
    return Said(
        who=customer_of(user),
        name=user.full_name,
        language=language_of(user.language_code, default_language),
        kind=kind_of(message),
        text=text_of(message),
        attachment=attachment_of(message),
        album=message.media_group_id,
        phone=message.contact.phone_number if message.contact else None,
        ref=str(message.message_id),
        username=user.username,
    )


def chat_key(update: Update) -> str:
    """An update's chat (a callback: the chat of the tapped message): the lane it runs in,
    unless it belongs to a ticket's thread in the staff group (`Router.lane`)."""
    chat = update.effective_chat
    if chat is not None:
        return f"{CHANNEL}:{chat.id}"
    user = update.effective_user
    return f"{CHANNEL}:{user.id}" if user else f"{CHANNEL}:other"


class Managers:
    """Who may decide compensation: MANAGER_IDS, and the staff group's administrators when the
    policy says so. What Telegram says of them (the administrators, the managers' first names)
    is asked by `refresh`, at start and every few minutes, outside any unit of work: the desk
    reads it from here at once (`people`) and never waits on Telegram while it holds the
    database."""

    STALE_AFTER = 300.0  # the administrators are asked again after this (seconds)

    def __init__(
        self, bot: Bot, ids: tuple[int, ...], staff_chat_id: int | None, include_admins: bool
    ) -> None:
        self.bot = bot
        self.ids = frozenset(ids)
        self.staff_chat_id = staff_chat_id
        self.include_admins = include_admins
        self._admins: frozenset[int] = frozenset()
        self._fetched = 0.0
        self._names: dict[int, str] = {}

    def people(self) -> list[Actor]:
        """The managers to mention, with their first names as last heard (none yet: "")."""
        ids = set(self.ids)
        if self.include_admins:
            ids |= self._admins
        return [Actor(str(i), self._names.get(i, ""), "manager") for i in sorted(ids)]

    async def refresh(self) -> None:
        """Ask Telegram for the administrators (when they count) and for the names not known
        yet. Never called inside a unit of work."""
        if self.staff_chat_id is None:
            return
        if self.include_admins:
            await self._fetch_admins()
        for user_id in sorted(self.ids | self._admins):
            if self._names.get(user_id):
                continue
            try:
                member = await self.bot.get_chat_member(self.staff_chat_id, user_id)
                self._names[user_id] = member.user.first_name
            except TelegramError as exc:  # a name is nice, not needed: asked again next time
                logger.info("No name for manager %s: %s", user_id, exc)

    async def is_manager(self, user_id: int) -> bool:
        if user_id in self.ids:
            return True
        if not self.include_admins or self.staff_chat_id is None:
            return False
        if time.monotonic() - self._fetched > self.STALE_AFTER:  # `refresh` keeps it fresh
            await self._fetch_admins()
        return user_id in self._admins

    async def _fetch_admins(self) -> None:
        assert self.staff_chat_id is not None
        try:
            admins = await self.bot.get_chat_administrators(self.staff_chat_id)
        except TelegramError as exc:
            logger.warning("Cannot read the staff group's administrators: %s", exc)
            return
        self._admins = frozenset(a.user.id for a in admins if not a.user.is_bot)
        for admin in admins:
            if not admin.user.is_bot and admin.user.first_name:
                self._names[admin.user.id] = admin.user.first_name
        self._fetched = time.monotonic()


class Router:
    """Turns one update into one use-case call, inside the update's unit of work. Returns what
    must happen after the commit (answering a tapped button), if anything."""

    def __init__(
        self,
        bot: Bot,
        desk: Desk,
        staff_chat_id: int | None,
        managers: Managers,
        default_language: str,
        clock: Callable[[], datetime],
        forum: Callable[[], bool] = lambda: False,
        new_topics: dict[int, int] | None = None,
        staff_elsewhere: bool = False,
    ) -> None:
        self.staff_elsewhere = staff_elsewhere  # staff work in another room (WeCom)
        self.new_topics = new_topics if new_topics is not None else {}
        self.bot = bot
        self.desk = desk
        self.staff_chat_id = staff_chat_id
        self.managers = managers
        self.default_language = default_language
        self.clock = clock
        self.forum = forum

    @property
    def open(self) -> bool:
        """Whether customers are served: the staff group is set, or staff work elsewhere."""
        return self.staff_chat_id is not None or self.staff_elsewhere

    async def handle(
        self, uow: UnitOfWork, update: Update, greeted: bool, followed: bool = False
    ) -> AfterCommit | None:
        """Handle one update. `followed`: more of the chat's updates are already stored behind
        this one (an album's other parts, often)."""
        now = self.clock()
        if update.callback_query is not None:
            answer = await self.tapped(uow, update.callback_query, now)
            return self._answer(update.callback_query, answer)
        if update.my_chat_member is not None:
            await self.membership_changed(uow, update.my_chat_member, now)
            return None
        if not self.open:  # set-up mode: /whoami and a word to customers only
            self.setting_up(uow, update)
            return None
        edit = update.edited_message
        if edit is not None and edit.chat.type == ChatType.PRIVATE:
            said = said_by_customer(edit, self.default_language)
            if said is not None:
                await customer.edited(uow, self.desk, said, now)
            return None
        message = update.message
        if message is None:
            return None  # something the desk does not use (a staff member's edit)
        text = (message.text or "").strip()
        if text.split("@")[0] == "/whoami":
            self.whoami(uow, message)
            return None
        if message.chat.type == ChatType.PRIVATE:
            await self.private_message(uow, message, now, greeted, followed)
        elif self.staff_chat_id is not None and message.chat.id == self.staff_chat_id:
            await self.staff_message(uow, message, now)
        return None

    # -- lanes, and what is done before an update's unit of work -----------------------------

    async def lane(self, uow: UnitOfWork, update: Update) -> str:
        """The lane an update runs in, decided when it is stored (inside that transaction).
        A customer's chat is one lane. In the staff group, a ticket's thread is one (a reply to
        one of its messages, a message in its topic, a tap on its card): one ticket's work
        never waits behind another's, and stays in order. A manager's insight command runs in
        a lane of its own (it may take seconds); anything else in the group's lane.

        A staff reply in a thread is linked to its ticket here already, so that a reply to it,
        stored before it is handled, finds the same ticket's lane."""
        key = chat_key(update)
        group = self.staff_chat_id
        if group is None:
            return key
        query = update.callback_query
        if query is not None:
            if query.message is None or query.message.chat.id != group:
                return key
            tapped = Key.parse(query.data or "")
            ticket_id = tapped.number(1) if tapped.prefix == "t" else None
            return f"{key}:ticket:{ticket_id}" if ticket_id else key
        message = update.message
        if message is None or message.chat.id != group:
            return key
        if self._insight(message) is not None:
            return f"{key}:insight:{update.update_id}"
        ticket_id = await self._thread_of(uow, message)
        if ticket_id is None:
            return key
        user = message.from_user
        if (
            user is not None
            and not user.is_bot
            and kind_of(message) not in ("contact", "other")
            and not (message.text or message.caption or "").strip().startswith("/")
        ):  # relayed to the customer: `staff_message` links it the same way
            await uow.links.link(group, message.message_id, ticket_id)
        return f"{key}:ticket:{ticket_id}"

    async def _thread_of(self, uow: UnitOfWork, message: Message) -> int | None:
        """The ticket whose thread a group message is in, as `ticket_of` finds it (nothing
        changed, no ticket loaded): its topic, or the message it replies to."""
        if self.forum() and message.is_topic_message and message.message_thread_id:
            thread = message.message_thread_id
            ticket_id = await uow.links.ticket_for_topic(thread)
            return ticket_id if ticket_id is not None else self.new_topics.get(thread)
        replied = message.reply_to_message
        if replied is None:
            return None
        ticket_id = await uow.links.ticket_for(message.chat.id, replied.message_id)
        if ticket_id is not None or not self._answers_the_bot(message):
            return ticket_id
        card = _card_of(replied)  # a card whose id is not stored yet (or one of another desk's)
        return card if card is not None and await uow.tickets.exists(card) else None

    def _insight(self, message: Message) -> tuple[str, str] | None:
        """A manager's insight command in the staff group (`/stats 7d`, `/orders` with a file):
        the command and what follows it."""
        user = message.from_user
        if message.chat.id != self.staff_chat_id or user is None or user.is_bot:
            return None
        text = (message.text or message.caption or "").strip()
        if not text.startswith("/"):
            return None
        head, _, args = text.replace("\n", " ").partition(" ")
        command = head.split("@")[0].lower()
        return (command, args) if command in manager.INSIGHT_COMMANDS else None

    async def prepare(self, update: Update, new_uow: NewUnitOfWork) -> manager.Finish | None:
        """What an insight command does before its update's unit of work, where nothing may
        wait on the network or hold the database for long: the orders file downloaded, then
        imported (in short transactions of its own); the figures read and computed (read-only).
        Returns what the update's unit of work then writes (the files, the messages) in place
        of `handle`; None for any other update."""
        message = update.message
        found = self._insight(message) if message is not None else None
        if message is None or message.from_user is None or found is None:
            return None
        command, args = found
        actor = await self.staff_actor(message.from_user)
        if actor.role != "manager":
            return manager.refused(self.desk, actor, command)
        now = self.clock()
        if command == "/orders":
            name, data = await self.document_of(message)
            return await manager.orders_received(new_uow, self.desk, actor, name, data, now)
        async with new_uow(read_only=True) as reading:
            if command == "/stats":
                return await manager.stats(reading, self.desk, actor, args, now)
            if command == "/export":
                return await manager.export(reading, self.desk, actor, args, now)
            return await manager.ticket_record(reading, self.desk, actor, args)

    # -- who is who ------------------------------------------------------------------------

    async def staff_actor(self, user: User) -> Actor:
        role = "manager" if await self.managers.is_manager(user.id) else "staff"
        return Actor(str(user.id), user.first_name or user.full_name, role)

    async def is_staff(self, user_id: int) -> bool:
        """Whether this person is in the staff group."""
        if self.staff_chat_id is None:
            return False
        try:
            member = await self.bot.get_chat_member(self.staff_chat_id, user_id)
        except (BadRequest, Forbidden):  # not in the group (Telegram away: asked again later)
            return False
        if member.status == ChatMemberStatus.RESTRICTED:  # restricted, and maybe gone since
            return bool(getattr(member, "is_member", False))
        return member.status in (
            ChatMemberStatus.OWNER,
            ChatMemberStatus.ADMINISTRATOR,
            ChatMemberStatus.MEMBER,
        )

    # -- messages --------------------------------------------------------------------------

    def whoami(self, uow: UnitOfWork, message: Message) -> None:
        """Tell the ids a shop owner needs for .env: this chat's and the user's."""
        user = message.from_user
        role = None
        if message.chat.type == ChatType.PRIVATE:
            role = "customer"
        lang = (
            language_of(user.language_code, self.default_language)
            if user and message.chat.type == ChatType.PRIVATE
            else self.default_language
        )
        text = self.desk.render(
            lang, "common/whoami.html", chat=message.chat, user=user, role=role
        )
        uow.outbox.to_customer(
            CustomerRef(CHANNEL, str(message.chat.id)), Say(text), urgency=Urgency.RELAY
        )

    async def private_message(
        self,
        uow: UnitOfWork,
        message: Message,
        now: datetime,
        greeted: bool,
        followed: bool = False,
    ) -> None:
        user = message.from_user
        if user is not None and DASHBOARD.match((message.text or "").strip()):
            await self.dashboard_in_private(uow, user)
            return
        match = DEEP_LINK.match((message.text or "").strip())
        if match and user is not None and await self.is_staff(user.id):
            # a staff member tapped a ticket in a digest: its card, read-only, in private
            say = await staff.ticket_card(uow, self.desk, match.group(2))
            uow.outbox.to_customer(customer_of(user), say, urgency=Urgency.RELAY)
            return
        said = said_by_customer(message, self.default_language)
        if said is not None:
            said = replace(said, followed=followed)
            await customer.wrote(uow, self.desk, said, now, greeted=greeted)

    async def dashboard_in_private(self, uow: UnitOfWork, user: User) -> None:
        """`/dashboard` in a private chat (or the start link's `/start dashboard`): a manager
        gets the dashboard's button; anyone else hears it is the managers'."""
        role = "manager" if await self.managers.is_manager(user.id) else "customer"
        actor = Actor(str(user.id), user.first_name or user.full_name, role)
        language = language_of(user.language_code, self.default_language)
        manager.dashboard_in_private(uow, self.desk, customer_of(user), actor, language)

    def start_link(self, payload: str) -> str | None:
        """A link that opens a private chat with the bot and starts it with `payload`."""
        try:
            username = self.bot.username
        except RuntimeError:  # not initialised (no getMe yet)
            return None
        return f"https://t.me/{username}?start={payload}" if username else None

    async def staff_message(self, uow: UnitOfWork, message: Message, now: datetime) -> None:
        """A staff member's message: relayed when it belongs to a ticket's thread."""
        user = message.from_user
        kind = kind_of(message)
        if user is None or user.is_bot or kind in ("contact", "other"):
            return
        command = (message.text or message.caption or "").strip()
        if command.startswith("/"):
            await self.staff_command(uow, message, command, now)
            return
        actor = await self.staff_actor(user)  # may ask Telegram: before the database
        ticket = await self.ticket_of(uow, message)
        if ticket is None or ticket.id is None:
            if self._answers_the_bot(message):  # a digest, a printout, an alert: no customer's
                staff.not_a_thread(uow, self.desk, actor)
            return
        await uow.links.link(message.chat.id, message.message_id, ticket.id)
        said = StaffSaid(
            actor=actor,
            ticket_id=ticket.id,
            kind=kind,
            text=text_of(message) if kind != "sticker" else None,
            attachment=attachment_of(message),
            ref=str(message.message_id),
        )
        await staff.replied(uow, self.desk, said, now)

    async def staff_command(
        self, uow: UnitOfWork, message: Message, text: str, now: datetime
    ) -> None:
        """Staff's facts about a ticket in its thread (insight commands: `prepare`)."""
        assert message.from_user is not None
        head, _, args = text.replace("\n", " ").partition(" ")
        command = head.split("@")[0].lower()
        if command in manager.INSIGHT_COMMANDS:
            return  # `prepare` did it, before the unit of work; the poller writes what it made
        actor = await self.staff_actor(message.from_user)
        if command == manager.DASHBOARD_COMMAND:  # the button goes to their private chat
            user = message.from_user
            manager.dashboard_in_room(
                uow,
                self.desk,
                actor,
                private=customer_of(user),
                language=language_of(user.language_code, self.default_language),
                start_link=self.start_link("dashboard"),
            )
            return
        if command == staff.HISTORY_COMMAND:
            ticket = await self.ticket_of(uow, message)
            if ticket is None:
                staff.no_ticket_for(uow, self.desk, command, actor)
            else:
                await staff.history_command(uow, self.desk, actor, ticket)
            return
        if command == staff.PHRASE_COMMAND:
            ticket = await self.ticket_of(uow, message)
            if ticket is None:
                staff.phrases_where(uow, self.desk, actor)
            else:
                ref = str(message.message_id)
                await staff.phrase_command(uow, self.desk, actor, ticket, args, ref, now)
            return
        if command in staff.FACT_COMMANDS:
            ticket = await self.ticket_of(uow, message)
            if ticket is None:
                staff.no_ticket_for(uow, self.desk, command, actor)
            else:
                await staff.fact_command(uow, self.desk, actor, ticket, command, args, now)

    async def document_of(self, message: Message) -> tuple[str, bytes | None]:
        """The file sent with a command (or the file it replies to): its name and bytes."""
        replied = message.reply_to_message
        document = message.document or (replied.document if replied is not None else None)
        if document is None:
            return "", None
        file = await self.bot.get_file(document.file_id)
        return document.file_name or "orders.csv", bytes(await file.download_as_bytearray())

    async def ticket_of(self, uow: UnitOfWork, message: Message) -> Ticket | None:
        """The ticket a group message answers: by its topic, or by the message it replies to."""
        if self.forum() and message.is_topic_message and message.message_thread_id:
            thread = message.message_thread_id
            ticket_id = await uow.links.ticket_for_topic(thread)
            if ticket_id is None:  # a topic made a moment ago: its id is not recorded yet
                ticket_id = self.new_topics.get(thread)
                ticket = await uow.tickets.get(ticket_id) if ticket_id else None
                if ticket is not None and ticket.topic_id is None:
                    ticket.topic_id = thread
                return ticket
            return await uow.tickets.get(ticket_id)
        replied = message.reply_to_message
        if replied is None:
            return None
        ticket_id = await uow.links.ticket_for(message.chat.id, replied.message_id)
        if ticket_id is not None:
            return await uow.tickets.get(ticket_id)
        if not self._answers_the_bot(message):
            return None
        # the card answered before the bot heard back about it (its id not stored yet): its
        # buttons name the ticket. Nothing else of the bot's (a digest, a /ticket printout, a
        # batch alert) is a ticket's thread, whatever references its text holds.
        ticket_id = _card_of(replied)
        if ticket_id is None:
            # a message of a ticket's thread answered the moment it appeared may not be linked
            # yet (the sender records it as Telegram answers): asked again in a moment
            sent = replied.date.timestamp() if replied.date else 0.0
            if time.time() - sent < LINK_GRACE and await uow.outbox.thread_in_flight():
                raise LinkPending(f"message {replied.message_id} not linked yet")
            return None
        ticket = await uow.tickets.get(ticket_id)
        if ticket is not None and ticket.card_message_id is None:
            ticket.card_message_id = replied.message_id  # this message is the card
        return ticket

    def _answers_the_bot(self, message: Message) -> bool:
        """Whether the message replies to one of this bot's own messages."""
        replied = message.reply_to_message
        author = replied.from_user if replied is not None else None
        return author is not None and author.is_bot and author.id == self.bot.id

    # -- taps ------------------------------------------------------------------------------

    async def tapped(self, uow: UnitOfWork, query: CallbackQuery, now: datetime) -> Answer:
        user = query.from_user
        chat = query.message.chat if query.message is not None else None
        message_ref = str(query.message.message_id) if query.message is not None else None
        key = query.data or ""
        if chat is not None and self.staff_chat_id is not None and chat.id == self.staff_chat_id:
            actor = await self.staff_actor(user)
            return await staff.card_tapped(uow, self.desk, actor, key, message_ref, now)
        lang = language_of(user.language_code, self.default_language)
        if chat is None or chat.type != ChatType.PRIVATE:
            return customer.stale(self.desk, lang)
        tap = Tap(customer_of(user), key, message_ref, lang)
        return await customer.tapped(uow, self.desk, tap, now)

    def _answer(self, query: CallbackQuery, answer: Answer) -> AfterCommit:
        async def after() -> None:
            try:
                await self.bot.answer_callback_query(
                    query.id, text=answer.text, show_alert=answer.alert
                )
            except TelegramError as exc:  # too late (15 s) or already answered: harmless
                logger.debug("Callback %s not answered: %s", query.id, exc)

        return after

    # -- before the staff group is set ------------------------------------------------------

    def setting_up(self, uow: UnitOfWork, update: Update) -> None:
        """No STAFF_CHAT_ID yet: /whoami answers anywhere; a customer hears, politely, that the
        desk is not open yet."""
        message = update.message
        if message is None:
            return
        if (message.text or "").strip().split("@")[0] == "/whoami":
            self.whoami(uow, message)
        elif message.chat.type == ChatType.PRIVATE and message.from_user is not None:
            lang = language_of(message.from_user.language_code, self.default_language)
            text = self.desk.render(lang, "common/not_open.html", policy=self.desk.policy)
            uow.outbox.to_customer(customer_of(message.from_user), Say(text))

    def added_to_group(self, uow: UnitOfWork, event: ChatMemberUpdated) -> None:
        """Set-up mode, the bot was added to a group: the exact line for .env, there and on the
        console."""
        line = f"STAFF_CHAT_ID={event.chat.id}"
        logger.warning("Added to the group %r: put this line in .env: %s", event.chat.title, line)
        print(
            f"Added to the group {event.chat.title!r}. Put this line in .env: {line}", flush=True
        )
        text = self.desk.render(
            self.default_language, "common/added_to_group.html", chat=event.chat, line=line
        )
        uow.outbox.to_customer(CustomerRef(CHANNEL, str(event.chat.id)), Say(text))

    # -- blocking --------------------------------------------------------------------------

    async def membership_changed(
        self, uow: UnitOfWork, event: ChatMemberUpdated, now: datetime
    ) -> None:
        """A customer blocked the bot (or unblocked it); in set-up mode, added to a group."""
        status = event.new_chat_member.status
        if event.chat.type != ChatType.PRIVATE:
            joined = status in (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR)
            if self.staff_chat_id is None and joined:
                self.added_to_group(uow, event)
            return
        who = CustomerRef(CHANNEL, str(event.chat.id))
        if status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT):
            await customer.unreachable(uow, self.desk, who, "blocked the bot", now)
        elif status == ChatMemberStatus.MEMBER:
            await customer.reachable(uow, self.desk, who)


def _card_of(message: Message) -> int | None:
    """The ticket whose card buttons this bot message carries, if it carries any."""
    keyboard = message.reply_markup
    if keyboard is None:
        return None
    for row in keyboard.inline_keyboard:
        for button in row:
            parts = str(button.callback_data or "").split(":")
            if len(parts) >= 3 and parts[0] == "t" and parts[2].isdigit():
                return int(parts[2])
    return None
