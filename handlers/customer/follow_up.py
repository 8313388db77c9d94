"""After the fix: the customer rates it 1-5 and may add a comment. A low score reopens the
ticket and pages the managers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot import keyboards
from bot.callbacks import RateCb
from bot.channels.telegram import TelegramDesk
from bot.domain.tickets import Actor, TicketStateError
from bot.middlewares import Managers
from bot.render import Render
from handlers.customer.intake import query_lang, remove_buttons, store
from storage.uow import UnitOfWork

router = Router(name=__name__)
Clock = Callable[[], datetime]


class FollowUp(StatesGroup):
    commenting = State()


@router.callback_query(RateCb.filter(F.score == 0))
async def comment_declined(
    query: CallbackQuery, state: FSMContext, render: Render, lang: str
) -> None:
    """No comment to add: fine."""
    await state.clear()
    await query.answer(render(lang, "customer/comment_declined.txt"))
    await remove_buttons(query)


@router.callback_query(RateCb.filter())
async def satisfaction_rated(
    query: CallbackQuery,
    callback_data: RateCb,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    clock: Clock,
    actor: Actor,
    desk: TelegramDesk,
    managers: Managers,
) -> None:
    """Thank a content customer; reopen and page the managers for a score of 1 or 2."""
    ticket = await uow.tickets.get(callback_data.ticket_id)
    if ticket is None or ticket.customer_id != actor.id:
        await query.answer(render(query_lang(query), "common/stale_button.txt"), show_alert=True)
        return
    try:
        reopened = ticket.rate(callback_data.score, clock())
    except TicketStateError:
        await query.answer(render(ticket.language, "common/stale_button.txt"), show_alert=True)
        return
    await uow.tickets.save(ticket)
    await query.answer()
    await remove_buttons(query)
    await uow.commit()
    if reopened:
        await desk.tell_customer(
            uow,
            ticket,
            "customer/rated_low.html",
            reply_markup=keyboards.no_comment(ticket.id or 0, ticket.language),
        )
        people = await managers.people(desk.bot)
        await desk.tell_group(uow, ticket, "staff/rated_low.html", managers=people)
    else:
        await desk.tell_customer(
            uow,
            ticket,
            "customer/rated_thanks.html",
            reply_markup=keyboards.no_comment(ticket.id or 0, ticket.language),
        )
        await desk.tell_group(uow, ticket, "staff/rated.html")
    await desk.refresh_card(ticket)
    await state.set_state(FollowUp.commenting)
    await state.set_data({"ticket_id": ticket.id})


@router.message(FollowUp.commenting, F.text)
async def comment_received(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    clock: Clock,
    desk: TelegramDesk,
) -> None:
    """The customer's comment on how it was handled: kept, and shown to staff."""
    data = await state.get_data()
    ticket = await uow.tickets.get(int(data.get("ticket_id", 0)))
    await state.clear()
    if ticket is None:
        return
    ticket.add_comment(message.text or "")
    await store(uow, ticket, message, clock(), relay=False)  # shown below, with its score
    await uow.tickets.save(ticket)
    await desk.tell_group(uow, ticket, "staff/comment.html", comment=message.text or "")
    await message.answer(render(ticket.language, "customer/comment_thanks.html"))
