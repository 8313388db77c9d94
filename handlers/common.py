"""For everyone: /whoami, a ticket opened from a digest, stale or forged buttons, a customer
who blocks the bot, errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import (
    KICKED,
    MEMBER,
    ChatMemberUpdatedFilter,
    Command,
    CommandObject,
    CommandStart,
    ExceptionTypeFilter,
)
from aiogram.types import CallbackQuery, ChatMemberUpdated, ErrorEvent, Message

from bot.channels.telegram import TelegramDesk
from bot.domain.tickets import parse_reference
from bot.render import Render
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)
router = Router(name=__name__)
commands = Router(name=f"{__name__}.commands")  # before the actors' routers: /whoami anywhere
Clock = Callable[[], datetime]


@commands.message(Command("whoami"))
async def cmd_whoami(message: Message, render: Render, lang: str, role: str | None) -> None:
    """Tell the ids a shop owner needs for .env: this chat's and the user's."""
    await message.answer(
        render(lang, "common/whoami.html", chat=message.chat, user=message.from_user, role=role)
    )


@commands.message(
    CommandStart(deep_link=True, magic=F.args.regexp(r"^T-\d{6,}$")), F.chat.type == "private"
)
async def ticket_opened_by_staff(
    message: Message, command: CommandObject, uow: UnitOfWork, desk: TelegramDesk
) -> None:
    """A staff member tapped a ticket in a digest: its card, read-only, in their private chat.
    Anyone else who opens such a link is a customer starting a complaint."""
    if message.from_user is None or not await desk.is_staff(message.from_user.id):
        raise SkipHandler
    ticket = await uow.tickets.get(parse_reference(command.args or "") or 0)
    if ticket is None:
        await message.answer(desk.render(desk.lang, "staff/no_such_ticket.txt"))
        return
    text = desk.card_text(ticket)
    note = desk.render(desk.lang, "staff/card_private_note.html", ticket=ticket)
    await message.answer(f"{text}\n\n{note}")


@router.callback_query()
async def button_stale(query: CallbackQuery, render: Render, lang: str) -> None:
    """A button whose data we do not know (old, forged, or from elsewhere): a short alert."""
    await query.answer(render(lang, "common/stale_button.txt"), show_alert=True)


@router.my_chat_member(F.chat.type == "private", ChatMemberUpdatedFilter(KICKED))
async def bot_blocked(
    event: ChatMemberUpdated, uow: UnitOfWork, clock: Clock, desk: TelegramDesk
) -> None:
    """The customer blocked the bot: their open ticket is marked unreachable on its card."""
    ticket = await uow.tickets.active_for_customer("telegram", event.chat.id)
    if ticket is not None and not ticket.customer_blocked:
        ticket.mark_undeliverable(clock(), "blocked the bot")
        await uow.tickets.save(ticket)
        await desk.refresh_card(ticket)


@router.my_chat_member(F.chat.type == "private", ChatMemberUpdatedFilter(MEMBER))
async def bot_unblocked(event: ChatMemberUpdated, uow: UnitOfWork) -> None:
    """The customer unblocked the bot: reachable again."""
    ticket = await uow.tickets.active_for_customer("telegram", event.chat.id)
    if ticket is not None and ticket.customer_blocked:
        ticket.mark_reachable()
        await uow.tickets.save(ticket)


@router.error(ExceptionTypeFilter(Exception))
async def error_logged(event: ErrorEvent) -> None:
    """Log what went wrong with the update; the inbox keeps the update and its error."""
    logger.exception("Update %s failed", event.update.update_id, exc_info=event.exception)
