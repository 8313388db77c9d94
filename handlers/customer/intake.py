"""The guided intake in the customer's private chat: empathy first, then one question at a
time, with buttons wherever the answer is a choice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from bot import keyboards, workflow
from bot.albums import Debouncer
from bot.callbacks import IntakeCb
from bot.channels.telegram import TelegramDesk, file_id_of, message_kind
from bot.domain.intake import (
    MAX_PHOTOS,
    Step,
    absorb_first_message,
    add_photo,
    next_step,
    normalise_order_number,
    normalise_phone,
    reset_answer,
)
from bot.domain.signals import match_category
from bot.domain.tickets import Actor, Status, Ticket
from bot.outbox import Priority, send_priority
from bot.policy import Policy
from bot.render import Render
from handlers.customer.states import STATE_OF_STEP, FileComplaint
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)
router = Router(name=__name__)

Clock = Callable[[], datetime]
TEXT_KINDS = ("text",)
# kinds staff should see even though they answer no question: sent on with the ticket
RELAYED_FROM_INTAKE = {"voice", "video", "document", "audio", "video_note", "animation"}


# -- helpers -------------------------------------------------------------------------------


async def store(
    uow: UnitOfWork, ticket: Ticket, message: Message, now: datetime, relay: bool | None = None
) -> str:
    """Keep the customer's message with the ticket; return its kind. Messages after the
    intake (and files during it) wait to be shown to staff unless `relay` says otherwise."""
    assert ticket.id is not None
    kind = message_kind(message)
    ticket.note_customer_message(now)
    text = message.text or message.caption
    if message.contact:
        text = f"{message.contact.first_name}: {message.contact.phone_number}"
    elif message.location:
        text = f"{message.location.latitude},{message.location.longitude}"
    elif message.sticker:
        text = message.sticker.emoji
    await uow.messages.add(
        ticket.id,
        direction="in",
        sender=Actor(ticket.customer_id, ticket.customer_name, "customer"),
        kind=kind,
        text=text,
        file_id=file_id_of(message),
        chat_id=message.chat.id,
        message_id=message.message_id,
        at=now,
        media_group_id=message.media_group_id,
        relay_pending=(
            relay
            if relay is not None
            else ticket.status is not Status.INTAKE or kind in RELAYED_FROM_INTAKE
        ),
    )
    return kind


def summary_context(ticket: Ticket, policy: Policy) -> dict[str, object]:
    category = policy.intake.category(ticket.category or "")
    return {
        "ticket": ticket,
        "category": category.label.in_(ticket.language) if category else "",
        "policy": policy,
    }


def question(step: Step, ticket: Ticket, render: Render, policy: Policy) -> tuple[str, Any]:
    """The text and buttons that ask for this step."""
    lang = ticket.language
    markup: Any = None
    if step is Step.CATEGORY:
        text = render(lang, "customer/ask_category.html")
        markup = keyboards.categories(policy, lang)
    elif step is Step.ORDER:
        text = render(lang, "customer/ask_order.html", example=policy.intake.order_example)
        markup = keyboards.order_number(lang)
    elif step is Step.STORY:
        text = render(lang, "customer/ask_story.html")
    elif step is Step.PHOTOS:
        text = render(lang, "customer/ask_photos.html", count=len(ticket.photos), most=MAX_PHOTOS)
        markup = keyboards.photos(lang, bool(ticket.photos))
    elif step is Step.CONTACT:
        text = render(lang, "customer/ask_contact.html")
        markup = keyboards.contact(lang)
    else:
        text = render(lang, "customer/summary.html", **summary_context(ticket, policy))
        markup = keyboards.confirm(lang)
    return text, markup


async def ask(
    step: Step,
    ticket: Ticket,
    bot: Bot,
    state: FSMContext,
    render: Render,
    policy: Policy,
    intro: str = "",
) -> None:
    """Ask the question for this step (after an optional lead-in) and wait for its answer."""
    text, markup = question(step, ticket, render, policy)
    if intro:
        text = f"{intro}\n\n{text}"
    await bot.send_message(ticket.customer_id, text, reply_markup=markup)
    await state.set_state(STATE_OF_STEP[step])


async def ask_next(
    ticket: Ticket,
    uow: UnitOfWork,
    bot: Bot,
    state: FSMContext,
    render: Render,
    policy: Policy,
    intro: str = "",
) -> None:
    await uow.tickets.save(ticket)
    await ask(next_step(ticket), ticket, bot, state, render, policy, intro)


async def current(uow: UnitOfWork, actor: Actor) -> Ticket | None:
    return await uow.tickets.active_for_customer("telegram", actor.id)


# -- the first message ---------------------------------------------------------------------


@dataclass
class Greeting:
    """The answer to a new customer's first message: the ticket it opens, and the empathy
    line with the first question still open."""

    ticket: Ticket
    step: Step
    text: str
    markup: Any


def greet(
    message: Message, actor: Actor, lang: str, policy: Policy, render: Render, now: datetime
) -> Greeting:
    """Keep what the first message already says; ask for the first thing still missing.
    Pure apart from rendering: the poller answers with it before anything is stored."""
    user = message.from_user
    ticket = Ticket.receive(actor, lang, now, username=user.username if user else None)
    if user:
        ticket.customer_name = user.full_name
    kind = message_kind(message)
    if not (message.text and message.text.startswith("/start")):
        text = message.text or message.caption or ""
        if kind in ("text", "photo", "video", "document") and text:
            absorb_first_message(ticket, text, policy.intake)
        if kind == "photo":
            add_photo(ticket, file_id_of(message) or "")
            ticket.photos_done = True
        if message.contact:
            ticket.contact = message.contact.phone_number
    step = next_step(ticket)
    text, markup = question(step, ticket, render, policy)
    welcome = render(lang, "customer/welcome.html", policy=policy)
    return Greeting(ticket, step, f"{welcome}\n\n{text}", markup)


async def start_complaint(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    lang: str,
    bot: Bot,
    greeted: bool = False,
) -> None:
    """Answer with empathy at once (unless the poller already did: `greeted`), keep what the
    first message already says, and ask for the first thing still missing."""
    now = clock()
    greeting = greet(message, actor, lang, policy, render, now)
    ticket = greeting.ticket
    if not greeted:
        # the answer goes out before anything is written: no write lock is held while it
        # travels; and it goes ahead of everything else the bot has to send
        token = send_priority.set(Priority.FIRST_REPLY)
        try:
            await bot.send_message(ticket.customer_id, greeting.text, reply_markup=greeting.markup)
        finally:
            send_priority.reset(token)
    await state.set_state(STATE_OF_STEP[greeting.step])
    ticket.note_customer_message(now)
    await uow.tickets.add(ticket)
    await store(uow, ticket, message, now)
    await state.set_data({"ticket_id": ticket.id})


# -- /cancel -------------------------------------------------------------------------------


@router.message(Command("cancel"))
async def cmd_cancel(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    clock: Clock,
    actor: Actor,
    lang: str,
) -> None:
    """Cancel the complaint being written (a submitted one stays with staff)."""
    ticket = await current(uow, actor)
    if ticket is None:
        await state.clear()
        await message.answer(
            render(lang, "customer/cancel_nothing.html"), reply_markup=ReplyKeyboardRemove()
        )
        return
    if ticket.status is not Status.INTAKE:
        await message.answer(
            render(ticket.language, "customer/cancel_submitted.html", ticket=ticket)
        )
        return
    await store(uow, ticket, message, clock())
    ticket.cancel(clock())
    await uow.tickets.save(ticket)
    await state.clear()
    await message.answer(
        render(ticket.language, "customer/cancelled.html"), reply_markup=ReplyKeyboardRemove()
    )


# -- answers, step by step -----------------------------------------------------------------


@router.callback_query(IntakeCb.filter(F.action == "cat"))
async def category_chosen(
    query: CallbackQuery,
    callback_data: IntakeCb,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    actor: Actor,
    bot: Bot,
) -> None:
    """Take the category the customer tapped."""
    ticket = await current(uow, actor)
    category = policy.intake.category(callback_data.value)
    if ticket is None or ticket.status is not Status.INTAKE or category is None:
        await query.answer(render(query_lang(query), "common/stale_button.txt"), show_alert=True)
        return
    ticket.category = category.key
    await query.answer()
    await remove_buttons(query)
    await ask_next(
        ticket,
        uow,
        bot,
        state,
        render,
        policy,
        intro=render(
            ticket.language,
            "customer/noted_choice.html",
            choice=category.label.in_(ticket.language),
        ),
    )


@router.message(FileComplaint.choosing_category, F.text)
async def category_typed(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    bot: Bot,
) -> None:
    """A typed category is accepted when it names one; anything else is kept as the story."""
    ticket = await intake_ticket(uow, actor, state)
    if ticket is None:
        return
    await store(uow, ticket, message, clock())
    category = match_category(message.text or "", policy.intake.categories)
    if category:
        ticket.category = category.key
        await ask_next(ticket, uow, bot, state, render, policy)
        return
    ticket.story.append(message.text or "")
    await ask_next(
        ticket,
        uow,
        bot,
        state,
        render,
        policy,
        intro=render(ticket.language, "customer/noted_tap_button.html"),
    )


@router.message(FileComplaint.entering_order_number, F.text)
async def order_number_entered(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    bot: Bot,
) -> None:
    """Check the order number against the shop's form; re-ask politely with an example."""
    ticket = await intake_ticket(uow, actor, state)
    if ticket is None:
        return
    await store(uow, ticket, message, clock())
    number = normalise_order_number(message.text or "", policy.intake)
    if number:
        ticket.order_number = number
        await ask_next(ticket, uow, bot, state, render, policy)
        return
    text = message.text or ""
    if len(text.strip()) >= 15:  # a sentence, not a mistyped number: keep it as the story
        ticket.story.append(text)
    await uow.tickets.save(ticket)
    await message.answer(
        render(
            ticket.language,
            "customer/order_invalid.html",
            example=policy.intake.order_example,
            kept=len(text.strip()) >= 15,
        ),
        reply_markup=keyboards.order_number(ticket.language),
    )


@router.callback_query(IntakeCb.filter(F.action == "noorder"))
async def order_number_skipped(
    query: CallbackQuery,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    actor: Actor,
    bot: Bot,
) -> None:
    """The customer has no order number: go on without it."""
    ticket = await current(uow, actor)
    if ticket is None or ticket.status is not Status.INTAKE or ticket.order_number:
        await query.answer(render(query_lang(query), "common/stale_button.txt"), show_alert=True)
        return
    ticket.order_skipped = True
    await query.answer()
    await ask_next(ticket, uow, bot, state, render, policy)
    await remove_buttons(query)  # after the answer: it need not wait for this edit


@router.message(FileComplaint.describing_problem, F.text)
async def problem_described(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    bot: Bot,
) -> None:
    """Keep what happened, in the customer's words."""
    ticket = await intake_ticket(uow, actor, state)
    if ticket is None:
        return
    await store(uow, ticket, message, clock())
    ticket.story.append(message.text or "")
    await ask_next(
        ticket,
        uow,
        bot,
        state,
        render,
        policy,
        intro=render(ticket.language, "customer/story_noted.html"),
    )


@router.message(F.photo, StateFilter(*FileComplaint.__all_states__))
async def photo_received(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    bot: Bot,
    albums: Debouncer,
    new_uow: Callable[[], UnitOfWork],
) -> None:
    """Keep a photo at any step; answer once per album, when the album has arrived."""
    ticket = await intake_ticket(uow, actor, state)
    if ticket is None:
        return
    await store(uow, ticket, message, clock())
    add_photo(ticket, file_id_of(message) or "")
    if message.caption:
        ticket.story.append(message.caption)
    await uow.tickets.save(ticket)
    customer_id = ticket.customer_id

    async def acknowledge() -> None:
        async with new_uow() as later:
            fresh = await later.tickets.active_for_customer("telegram", customer_id)
            if fresh is None or fresh.status is not Status.INTAKE:
                return
            full = len(fresh.photos) >= MAX_PHOTOS
            if full:
                fresh.photos_done = True
            intro = (
                ""
                if next_step(fresh) is Step.PHOTOS
                else render(
                    fresh.language,
                    "customer/photos_received.html",
                    count=len(fresh.photos),
                    most=MAX_PHOTOS,
                    full=full,
                )
            )
            await ask_next(fresh, later, bot, state, render, policy, intro=intro)
            await later.commit()

    # one answer for a whole album (or for photos sent one by one in quick succession)
    albums.touch(("intake", customer_id), customer_id, acknowledge)


@router.callback_query(IntakeCb.filter(F.action.in_({"photosdone", "nophotos"})))
async def photos_finished(
    query: CallbackQuery,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    actor: Actor,
    bot: Bot,
) -> None:
    """The customer has sent all photos (or has none)."""
    ticket = await current(uow, actor)
    if ticket is None or ticket.status is not Status.INTAKE or ticket.photos_done:
        await query.answer(render(query_lang(query), "common/stale_button.txt"), show_alert=True)
        return
    ticket.photos_done = True
    await query.answer()
    await ask_next(ticket, uow, bot, state, render, policy)
    await remove_buttons(query)  # after the answer: it need not wait for this edit


@router.message(F.contact, StateFilter(*FileComplaint.__all_states__))
async def contact_shared(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    bot: Bot,
) -> None:
    """Take the phone number the customer shared with the button."""
    ticket = await intake_ticket(uow, actor, state)
    if ticket is None or message.contact is None:
        return
    await store(uow, ticket, message, clock())
    ticket.contact = message.contact.phone_number
    await message.answer(
        render(ticket.language, "customer/contact_saved.html", contact=ticket.contact),
        reply_markup=ReplyKeyboardRemove(),
    )
    await ask_next(ticket, uow, bot, state, render, policy)


@router.message(FileComplaint.sharing_contact, F.text)
async def contact_typed(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    bot: Bot,
) -> None:
    """A typed phone number, or "skip"; anything else is kept and the question asked again."""
    ticket = await intake_ticket(uow, actor, state)
    if ticket is None:
        return
    await store(uow, ticket, message, clock())
    text = (message.text or "").strip()
    if text.lower() in {t.lower() for t in keyboards.skip_contact_texts()}:
        ticket.contact_skipped = True
        await message.answer(
            render(ticket.language, "customer/contact_skipped.html"),
            reply_markup=ReplyKeyboardRemove(),
        )
        await ask_next(ticket, uow, bot, state, render, policy)
        return
    phone = normalise_phone(text)
    if phone:
        ticket.contact = phone
        await message.answer(
            render(ticket.language, "customer/contact_saved.html", contact=phone),
            reply_markup=ReplyKeyboardRemove(),
        )
        await ask_next(ticket, uow, bot, state, render, policy)
        return
    ticket.story.append(text)
    await uow.tickets.save(ticket)
    await message.answer(
        render(ticket.language, "customer/contact_invalid.html"),
        reply_markup=keyboards.contact(ticket.language),
    )


@router.message(FileComplaint.sending_photos, F.text)
@router.message(FileComplaint.confirming, F.text)
@router.message(FileComplaint.choosing_field, F.text)
async def words_between_questions(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    bot: Bot,
) -> None:
    """Words while we wait for photos or a decision: part of the story; the same question (or
    the summary) is shown again."""
    ticket = await intake_ticket(uow, actor, state)
    if ticket is None:
        return
    await store(uow, ticket, message, clock())
    ticket.story.append(message.text or "")
    await ask_next(
        ticket,
        uow,
        bot,
        state,
        render,
        policy,
        intro=render(ticket.language, "customer/noted.html"),
    )


@router.callback_query(IntakeCb.filter(F.action == "change"))
async def change_requested(
    query: CallbackQuery,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    actor: Actor,
) -> None:
    """Offer the parts of the complaint that can be changed."""
    ticket = await current(uow, actor)
    if ticket is None or ticket.status is not Status.INTAKE:
        await query.answer(render(query_lang(query), "common/stale_button.txt"), show_alert=True)
        return
    await query.answer()
    await remove_buttons(query)
    await state.set_state(FileComplaint.choosing_field)
    await query.bot.send_message(  # type: ignore[union-attr]
        ticket.customer_id,
        render(ticket.language, "customer/ask_change.html"),
        reply_markup=keyboards.change(ticket.language),
    )


@router.callback_query(IntakeCb.filter(F.action.in_({"edit", "back"})))
async def field_chosen(
    query: CallbackQuery,
    callback_data: IntakeCb,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    actor: Actor,
    bot: Bot,
) -> None:
    """Forget the chosen answer and ask for it again (or go back to the summary)."""
    ticket = await current(uow, actor)
    valid = {s.value for s in Step} - {Step.CONFIRM.value}
    if (
        ticket is None
        or ticket.status is not Status.INTAKE
        or (callback_data.action == "edit" and callback_data.value not in valid)
    ):
        await query.answer(render(query_lang(query), "common/stale_button.txt"), show_alert=True)
        return
    await query.answer()
    await remove_buttons(query)
    if callback_data.action == "edit":
        reset_answer(ticket, Step(callback_data.value))
    await ask_next(ticket, uow, bot, state, render, policy)


@router.callback_query(IntakeCb.filter(F.action == "cancel"))
async def cancel_tapped(
    query: CallbackQuery,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    clock: Clock,
    actor: Actor,
) -> None:
    """Cancel from the summary."""
    ticket = await current(uow, actor)
    if ticket is None or ticket.status is not Status.INTAKE:
        await query.answer(render(query_lang(query), "common/stale_button.txt"), show_alert=True)
        return
    ticket.cancel(clock())
    await uow.tickets.save(ticket)
    await state.clear()
    await query.answer()
    await remove_buttons(query)
    await query.bot.send_message(  # type: ignore[union-attr]
        ticket.customer_id,
        render(ticket.language, "customer/cancelled.html"),
        reply_markup=ReplyKeyboardRemove(),
    )


@router.callback_query(IntakeCb.filter(F.action == "submit"))
async def complaint_submitted(
    query: CallbackQuery,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    desk: TelegramDesk,
    sla: dict[str, object],
) -> None:
    """Send the ticket to the staff group and tell the customer what happens next, by when."""
    ticket = await current(uow, actor)
    if (
        ticket is None
        or ticket.status is not Status.INTAKE
        or next_step(ticket) is not Step.CONFIRM
    ):
        await query.answer(render(query_lang(query), "common/stale_button.txt"), show_alert=True)
        return
    now = clock()
    await workflow.submit(uow, ticket, policy, now)
    await state.clear()
    await query.answer()
    await remove_buttons(query)
    await query.bot.send_message(  # type: ignore[union-attr]
        ticket.customer_id,
        render(
            ticket.language,
            "customer/submitted.html",
            ticket=ticket,
            now=now,
            back_at=None if policy.hours.is_open(now) else policy.hours.next_opening(now),
            **sla,
        ),
    )
    await uow.commit()  # the ticket is safe before the group is asked for anything
    try:
        await desk.announce(uow, ticket)
    except TelegramAPIError as exc:  # posted again at the next start: never invisible
        logger.error("%s could not be posted to the staff group: %s", ticket.reference, exc)


# -- anything else during the intake -------------------------------------------------------


@router.message(StateFilter(*FileComplaint.__all_states__))
async def input_invalid(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    render: Render,
    policy: Policy,
    clock: Clock,
    actor: Actor,
    bot: Bot,
) -> None:
    """Stickers, voice, files where words are needed: kept with the complaint, and a polite
    word on what the question needs."""
    ticket = await intake_ticket(uow, actor, state)
    if ticket is None:
        return
    kind = await store(uow, ticket, message, clock())
    await ask_next(
        ticket,
        uow,
        bot,
        state,
        render,
        policy,
        intro=render(
            ticket.language, "customer/not_text.html", kind=kind, kept=kind in RELAYED_FROM_INTAKE
        ),
    )


async def intake_ticket(uow: UnitOfWork, actor: Actor, state: FSMContext) -> Ticket | None:
    """The customer's ticket in intake; a dangling dialogue state is cleared."""
    ticket = await current(uow, actor)
    if ticket is None or ticket.status is not Status.INTAKE:
        await state.clear()
        return None
    return ticket


async def remove_buttons(query: CallbackQuery) -> None:
    """Take the buttons off a message once tapped, so an old one cannot be tapped again."""
    if query.message is None or not hasattr(query.message, "edit_reply_markup"):
        return
    try:
        await query.message.edit_reply_markup(reply_markup=None)
    except Exception as exc:  # an old message may no longer be editable; harmless
        logger.debug("Buttons not removed: %s", exc)


def query_lang(query: CallbackQuery) -> str:
    code = query.from_user.language_code if query.from_user else None
    return "zh" if code and code.lower().startswith("zh") else "en"
