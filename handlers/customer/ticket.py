"""A customer with a ticket already with staff: their messages go to the group under it, and
they choose among the remedies the manager offered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import Bot, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot import keyboards
from bot.albums import Debouncer
from bot.callbacks import OptionCb
from bot.channels.telegram import TelegramDesk
from bot.domain.remedies import UnknownRemedy
from bot.domain.tickets import Actor, Status, TicketStateError
from bot.policy import Policy
from bot.render import Render
from handlers.customer.intake import ask_next, query_lang, remove_buttons, start_complaint, store
from storage.uow import UnitOfWork

router = Router(name=__name__)
Clock = Callable[[], datetime]


@router.message()
async def message_received(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    lang: str,
    bot: Bot,
    desk: TelegramDesk,
    albums: Debouncer,
    new_uow: Callable[[], UnitOfWork],
    greeted: bool = False,
) -> None:
    """No open ticket: a new complaint starts (`greeted`: the poller has answered already). An
    open one: the message joins it and staff see it (an album once it has arrived whole)."""
    ticket = await uow.tickets.active_for_customer("telegram", actor.id)
    if ticket is None:
        await start_complaint(
            message, uow, state, render, policy, clock, actor, lang, bot, greeted
        )
        return
    if ticket.status is Status.INTAKE:  # the dialogue state was lost: ask again where we are
        await store(uow, ticket, message, clock())
        await ask_next(ticket, uow, bot, state, render, policy)
        return
    if message.text and message.text.startswith("/start"):
        await message.answer(render(ticket.language, "customer/already_open.html", ticket=ticket))
        return
    await store(uow, ticket, message, clock())
    if message.media_group_id:
        ticket_id = ticket.id

        async def relay_album() -> None:
            async with new_uow() as later:
                fresh = await later.tickets.get(ticket_id or 0)
                if fresh is not None:
                    await desk.relay_pending(later, fresh)
                    await later.commit()

        albums.touch(("relay", ticket.customer_id), ticket.customer_id, relay_album)
        return
    await uow.commit()  # stored before the group is asked: nothing is lost if sending fails
    await desk.relay_pending(uow, ticket)


@router.callback_query(OptionCb.filter())
async def remedy_chosen(
    query: CallbackQuery,
    callback_data: OptionCb,
    uow: UnitOfWork,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    desk: TelegramDesk,
) -> None:
    """The customer's choice: confirmed to them (what and by when), and staff told what to do."""
    ticket = await uow.tickets.get(callback_data.ticket_id)
    if ticket is None or ticket.customer_id != actor.id:
        await query.answer(render(query_lang(query), "common/stale_button.txt"), show_alert=True)
        return
    try:
        tier = policy.ladder.tier(callback_data.tier)
        option = tier.option(callback_data.option)
        ticket.choose_remedy(tier.key, callback_data.option, clock())
    except (TicketStateError, UnknownRemedy):
        await query.answer(render(ticket.language, "common/stale_button.txt"), show_alert=True)
        return
    await uow.tickets.save(ticket)
    await query.answer()
    await remove_buttons(query)
    now = clock()
    await desk.tell_customer(
        uow, ticket, "customer/remedy_chosen.html", option=option, due=now + option.within
    )
    await uow.commit()
    await desk.tell_group(
        uow,
        ticket,
        "staff/remedy_chosen.html",
        reply_markup=keyboards.done(ticket.id or 0, desk.lang),
        option=option,
        due=now + option.within,
    )
    await desk.refresh_card(ticket)
