"""A staff member's reply in the group reaches the customer, signed with their first name."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from aiogram import F, Router
from aiogram.types import Message

from bot.callbacks import CardCb
from bot.channels.base import Delivery
from bot.channels.telegram import KINDS, TelegramDesk, file_id_of, message_kind
from bot.domain.guard import find_banned
from bot.domain.tickets import Actor, Status, Ticket, parse_reference
from bot.policy import Policy
from bot.render import Render
from storage.uow import UnitOfWork

router = Router(name=__name__)
REFERENCE = re.compile(r"T-\d{6,}")
Clock = Callable[[], datetime]
RELAYABLE = set(KINDS) - {"contact"}  # a phone card from staff is not for customers


async def ticket_of(message: Message, uow: UnitOfWork, desk: TelegramDesk) -> Ticket | None:
    """The ticket a group message answers: by its topic, or by the message it replies to."""
    if desk.forum and message.is_topic_message and message.message_thread_id:
        ticket_id = await uow.links.ticket_for_topic(message.message_thread_id)
    elif message.reply_to_message is not None:
        replied = message.reply_to_message
        ticket_id = await uow.links.ticket_for(message.chat.id, replied.message_id)
        if ticket_id is None and replied.from_user and replied.from_user.is_bot:
            # a reply that came before its link was stored: the reference is in the text
            found = REFERENCE.search(replied.text or replied.caption or "")
            ticket_id = parse_reference(found.group(0)) if found else None
            ticket = await uow.tickets.get(ticket_id) if ticket_id else None
            if (
                ticket is not None
                and ticket.card_message_id is None
                and _is_card_of(replied, ticket)
            ):  # the card's id is not stored yet either: this message is the card
                ticket.card_message_id = replied.message_id
            return ticket
    else:
        return None
    return await uow.tickets.get(ticket_id) if ticket_id else None


def _is_card_of(message: Message, ticket: Ticket) -> bool:
    """Whether a bot message carries the buttons of this ticket's card."""
    markup = message.reply_markup
    if markup is None:
        return False
    for row in markup.inline_keyboard:
        for button in row:
            try:
                if CardCb.unpack(button.callback_data or "").ticket_id == ticket.id:
                    return True
            except (TypeError, ValueError):  # another kind of button
                continue
    return False


@router.message(~F.text.startswith("/"))
async def staff_replied(
    message: Message,
    uow: UnitOfWork,
    desk: TelegramDesk,
    clock: Clock,
    actor: Actor,
    policy: Policy,
    render: Render,
) -> None:
    """Relay the reply; record the first human response; say so when it could not arrive."""
    if message_kind(message) not in RELAYABLE:
        return
    ticket = await ticket_of(message, uow, desk)
    if ticket is None or ticket.status is Status.CANCELLED:
        return
    assert ticket.id is not None
    now = clock()
    banned = find_banned(message.text or message.caption or "", policy.banned)
    if banned is not None:  # never reaches the customer: the staff member is told why
        ticket.hold_back(actor, banned.phrase, now)
        await uow.tickets.save(ticket)
        await message.reply(
            render(desk.lang, "staff/banned_phrase.html", banned=banned, actor=actor)
        )
        return
    await uow.links.link(message.chat.id, message.message_id, ticket.id)
    delivery = await desk.relay_to_customer(uow, ticket, actor, message)
    await uow.messages.add(
        ticket.id,
        direction="out",
        sender=actor,
        kind=message_kind(message),
        text=message.text or message.caption,
        file_id=file_id_of(message),
        chat_id=message.chat.id,
        message_id=message.message_id,
        at=now,
    )
    if delivery is not Delivery.SENT:
        return
    if ticket.status is Status.INTAKE:  # a word to calm them while they are still writing
        await uow.tickets.save(ticket)
        return
    first = ticket.record_answer(actor, now)
    if ticket.taken_by is None and ticket.is_with_staff:  # who answers first handles it
        ticket.take(actor, now)
    await uow.tickets.save(ticket)
    if first:
        await desk.refresh_card(ticket)
