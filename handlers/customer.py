"""The customer: empathy first, then one question at a time; once the ticket is with staff, their
messages go to its thread; they choose a remedy and rate the fix.

The intake's state is the ticket (`intake.next_step`): nothing is kept beside it.

```mermaid
stateDiagram-v2
    [*] --> category: first message (what it already answers is skipped)
    category --> order
    order --> story
    story --> photos
    photos --> contact: done / no photos
    contact --> confirm
    confirm --> category: change (any answer is asked again) ... --> confirm
    confirm --> [*]: submit (the card goes to the staff room) / cancel
```
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

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
from bot.domain.messages import (
    FILE_KINDS,
    PHOTO,
    TEXT,
    Answer,
    Attachment,
    Said,
    Say,
    Tap,
    Urgency,
)
from bot.domain.remedies import UnknownRemedy
from bot.domain.signals import match_category
from bot.domain.tickets import CustomerRef, Status, Ticket, TicketStateError
from bot.labels import skip_contact_texts
from handlers import choices, common
from handlers.choices import Key
from handlers.context import Desk
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

# kinds staff should see even though they answer no question: shown with the ticket's card
EDIT = "edit"  # a message the customer changed: its new wording, kept and shown to staff
RELAYED_FROM_INTAKE = {"voice", "video", "document", "audio", "video_note", "animation"}
# a photo with more of the customer's messages already here: its answer waits this long past the
# album window, since the next message replaces or drops it (a slow moment between an album's
# parts must not answer the album twice); a crash before then still lets it go
FOLLOWED_HOLD = timedelta(seconds=10)
LONG_ENOUGH_FOR_STORY = 15  # a sentence typed where an order number was asked


# -- asking --------------------------------------------------------------------------------


def question(desk: Desk, ticket: Ticket, step: Step) -> Say:
    """The text and choices that ask for this step."""
    lang = ticket.language
    render = desk.render
    policy = desk.policy
    if step is Step.CATEGORY:
        return Say(render(lang, "customer/ask_category.html"), choices.categories(policy, lang))
    if step is Step.ORDER:
        text = render(lang, "customer/ask_order.html", example=policy.intake.order_example)
        return Say(text, choices.order_number(lang))
    if step is Step.STORY:
        return Say(render(lang, "customer/ask_story.html"))
    if step is Step.PHOTOS:
        text = render(lang, "customer/ask_photos.html", count=len(ticket.photos), most=MAX_PHOTOS)
        return Say(text, choices.photos(lang, bool(ticket.photos)))
    if step is Step.CONTACT:
        return Say(render(lang, "customer/ask_contact.html"), choices.contact(lang))
    text = render(lang, "customer/summary.html", **summary_context(desk, ticket))
    return Say(text, choices.confirm(lang))


def summary_context(desk: Desk, ticket: Ticket) -> dict[str, object]:
    category = desk.policy.intake.category(ticket.category or "")
    return {
        "ticket": ticket,
        "category": category.label.in_(ticket.language) if category else "",
        "policy": desk.policy,
    }


def ask_next(
    uow: UnitOfWork,
    desk: Desk,
    ticket: Ticket,
    intro: str = "",
    clear: bool = False,
    urgency: Urgency = Urgency.RELAY,
) -> None:
    """Ask the first question the customer has not answered (after an optional lead-in)."""
    say = question(desk, ticket, next_step(ticket))
    text = f"{intro}\n\n{say.text}" if intro else say.text
    uow.outbox.to_customer(
        ticket.customer,
        Say(text, say.choices, clear_choices=clear),
        ticket_id=ticket.id,
        urgency=urgency,
    )


def _say(uow: UnitOfWork, desk: Desk, ticket: Ticket, template: str, **context: object) -> None:
    common.tell_customer(uow, desk, ticket, template, **context)  # type: ignore[arg-type]


async def store(
    uow: UnitOfWork, ticket: Ticket, said: Said, now: datetime, relay_later: bool = False
) -> None:
    """Keep the customer's message with the ticket. `relay_later`: staff see it with the card."""
    assert ticket.id is not None
    ticket.note_customer_message(now)
    await uow.messages.add(
        ticket.id,
        direction="in",
        sender=said.actor,
        kind=said.kind,
        text=said.text if said.phone is None else f"{said.name}: {said.phone}",
        file_id=said.attachment.ref if said.attachment else None,
        chat_id=said.who.id,
        message_id=said.ref,
        at=now,
        media_group_id=said.album,
        relay_pending=relay_later,
    )


# -- the first message ---------------------------------------------------------------------


@dataclass
class Greeting:
    """The answer to a new customer's first message: the ticket it opens (not stored yet), and
    the empathy line with the first question still open."""

    ticket: Ticket
    say: Say


def greet(desk: Desk, said: Said, now: datetime) -> Greeting:
    """Keep what the first message already says; ask for the first thing still missing. Pure:
    an adapter may send it before anything is stored."""
    ticket = Ticket.receive(said.who, said.name, said.language, now, username=said.username)
    if not said.is_start:
        text = said.text or ""
        if said.kind in (TEXT, PHOTO, "video", "document") and text:
            absorb_first_message(ticket, text, desk.policy.intake)
        if said.kind == PHOTO and said.attachment is not None:
            add_photo(ticket, said.attachment.ref)
            ticket.photos_done = True
        if said.phone:
            ticket.contact = said.phone
    say = question(desk, ticket, next_step(ticket))
    welcome = desk.render(said.language, "customer/welcome.html", policy=desk.policy)
    return Greeting(ticket, Say(f"{welcome}\n\n{say.text}", say.choices))


def opens_complaint(said: Said) -> bool:
    """Whether a message from someone with no ticket opens one (a command does not)."""
    text = (said.text or "").strip()
    return not (text.startswith("/") and text.split("@")[0].split(" ")[0] != "/start")


async def start_complaint(
    uow: UnitOfWork, desk: Desk, said: Said, now: datetime, greeted: bool = False
) -> Ticket:
    """Answer with empathy (unless the adapter already did: `greeted`), keep what the first
    message says, and ask for the first thing still missing."""
    greeting = greet(desk, said, now)
    ticket = greeting.ticket
    if not greeted:
        uow.outbox.to_customer(said.who, greeting.say, urgency=Urgency.FIRST_REPLY)
    ticket.note_customer_message(now)
    await uow.tickets.add(ticket)
    await store(uow, ticket, said, now, relay_later=said.kind in RELAYED_FROM_INTAKE)
    return ticket


# -- a message -----------------------------------------------------------------------------


async def wrote(
    uow: UnitOfWork, desk: Desk, said: Said, now: datetime, greeted: bool = False
) -> None:
    """A customer's message, whatever it is: the answer to the question they are at, a new
    complaint, a word for staff on their open ticket, or their comment on the fix. Alarm words
    page the managers at any step."""
    ticket = await _handle(uow, desk, said, now, greeted)
    if ticket is not None and said.text and ticket.is_active:
        await common.watch(uow, desk, ticket, said.text, now)


async def _handle(
    uow: UnitOfWork, desk: Desk, said: Said, now: datetime, greeted: bool
) -> Ticket | None:
    if said.kind == TEXT and not (said.text or "").startswith("/cancel"):
        rated = await uow.tickets.awaiting_comment(said.who)
        if rated is not None:
            await comment_received(uow, desk, rated, said, now)
            return rated  # its words are watched too
    ticket = await uow.tickets.active_for_customer(said.who)
    if (said.text or "").split("@")[0].strip() == "/cancel":
        await cancel(uow, desk, said, ticket, now)
        return None
    if ticket is None:
        missed = await uow.tickets.follow_up_missed(said.who)
        if missed is not None:
            await follow_up_again(uow, desk, missed, said, now)
            return missed
        if not opens_complaint(said):
            return None
        return await start_complaint(uow, desk, said, now, greeted)
    if ticket.status is Status.INTAKE:
        await answered(uow, desk, ticket, said, now)
        return ticket
    if said.is_start:
        _say(uow, desk, ticket, "customer/already_open.html")
        return ticket
    await store(uow, ticket, said, now)
    await uow.tickets.save(ticket)
    relay(uow, desk, ticket, said, now)
    return ticket


def relay(uow: UnitOfWork, desk: Desk, ticket: Ticket, said: Said, now: datetime) -> None:
    """Show staff the customer's message in the ticket's thread. Photos of one album wait for
    the album's end and go as one album; texts may be merged while they wait for the room."""
    assert ticket.id is not None
    header = desk.render(desk.staff_language, "staff/customer_header.html", ticket=ticket)
    text = said.text or ""
    if said.phone:
        text = f"{said.name}: {said.phone}"
    not_before = now + _album_hold(desk, said) if said.album else None
    if said.attachment is None:
        for piece in common.texts(header, text):
            uow.outbox.to_thread(
                ticket.id,
                Say(piece),
                relay=True,
                urgency=Urgency.RELAY,
                merge=(header, piece[len(header) + 1 :]),
            )
        return
    uow.outbox.to_thread(
        ticket.id,
        Say(
            f"{header}\n{common.escape(text)}" if text else header, attachments=(said.attachment,)
        ),
        relay=True,
        urgency=Urgency.RELAY,
        album=said.album,
        not_before=not_before,
    )


async def answered(uow: UnitOfWork, desk: Desk, ticket: Ticket, said: Said, now: datetime) -> None:
    """A message during the intake: the answer to the question the customer is at."""
    assert ticket.id is not None
    await uow.outbox.drop(_photos_ack(ticket))
    if said.is_start:  # the messenger's start button again: where were we?
        await _ask_next(uow, desk, ticket)
        return
    if said.kind == PHOTO and said.attachment is not None:
        await photo_received(uow, desk, ticket, said, now)
        return
    await store(uow, ticket, said, now, relay_later=said.kind in RELAYED_FROM_INTAKE)
    if said.phone:
        ticket.contact = said.phone
        _say(uow, desk, ticket, "customer/contact_saved.html", contact=said.phone, clear=True)
        await _ask_next(uow, desk, ticket)
        return
    if said.kind != TEXT:
        intro = desk.render(
            ticket.language,
            "customer/not_text.html",
            kind=said.kind,
            kept=said.kind in RELAYED_FROM_INTAKE,
        )
        await _ask_next(uow, desk, ticket, intro)
        return
    text = said.text or ""
    step = next_step(ticket)
    if step is Step.CATEGORY:
        category = match_category(text, desk.policy.intake.categories)
        if category:
            ticket.category = category.key
            await _ask_next(uow, desk, ticket)
            return
        ticket.story.append(text)
        await _ask_next(
            uow, desk, ticket, desk.render(ticket.language, "customer/noted_tap_button.html")
        )
    elif step is Step.ORDER:
        await order_number_entered(uow, desk, ticket, text)
    elif step is Step.STORY:
        ticket.story.append(text)
        await _ask_next(
            uow, desk, ticket, desk.render(ticket.language, "customer/story_noted.html")
        )
    elif step is Step.CONTACT:
        await contact_typed(uow, desk, ticket, text)
    else:  # words while we wait for photos or a decision: part of the story
        ticket.story.append(text)
        await _ask_next(uow, desk, ticket, desk.render(ticket.language, "customer/noted.html"))


async def _ask_next(
    uow: UnitOfWork, desk: Desk, ticket: Ticket, intro: str = "", clear: bool = False
) -> None:
    await uow.tickets.save(ticket)
    ask_next(uow, desk, ticket, intro, clear)


async def order_number_entered(uow: UnitOfWork, desk: Desk, ticket: Ticket, text: str) -> None:
    """Check the order number against the shop's form; re-ask politely with an example."""
    number = normalise_order_number(text, desk.policy.intake)
    if number:
        ticket.order_number = number
        await _ask_next(uow, desk, ticket)
        return
    kept = len(text.strip()) >= LONG_ENOUGH_FOR_STORY  # a sentence, not a mistyped number
    if kept:
        ticket.story.append(text)
    await uow.tickets.save(ticket)
    rendered = desk.render(
        ticket.language,
        "customer/order_invalid.html",
        example=desk.policy.intake.order_example,
        kept=kept,
    )
    uow.outbox.to_customer(
        ticket.customer,
        Say(rendered, choices.order_number(ticket.language)),
        ticket_id=ticket.id,
    )


async def contact_typed(uow: UnitOfWork, desk: Desk, ticket: Ticket, text: str) -> None:
    """A typed phone number, or "skip"; anything else is kept and the question asked again."""
    text = text.strip()
    if text.lower() in {t.lower() for t in skip_contact_texts()}:
        ticket.contact_skipped = True
        _say(uow, desk, ticket, "customer/contact_skipped.html", clear=True)
        await _ask_next(uow, desk, ticket)
        return
    phone = normalise_phone(text)
    if phone:
        ticket.contact = phone
        _say(uow, desk, ticket, "customer/contact_saved.html", contact=phone, clear=True)
        await _ask_next(uow, desk, ticket)
        return
    ticket.story.append(text)
    await uow.tickets.save(ticket)
    rendered = desk.render(ticket.language, "customer/contact_invalid.html")
    uow.outbox.to_customer(
        ticket.customer, Say(rendered, choices.contact(ticket.language)), ticket_id=ticket.id
    )


def _album_hold(desk: Desk, said: Said) -> timedelta:
    """How long what a photo brings waits: the album window, and longer while more of the
    customer's messages are already here (the next one replaces or drops it)."""
    return desk.album_window + (FOLLOWED_HOLD if said.followed else timedelta())


def _photos_ack(ticket: Ticket) -> str:
    return f"photos:{ticket.id}"


async def photo_received(
    uow: UnitOfWork, desk: Desk, ticket: Ticket, said: Said, now: datetime
) -> None:
    """Keep a photo at any step; answer once the photos stop coming (one answer an album)."""
    assert said.attachment is not None
    await store(uow, ticket, said, now)
    add_photo(ticket, said.attachment.ref)
    if said.text:
        ticket.story.append(said.text)
    full = len(ticket.photos) >= MAX_PHOTOS
    if full:
        ticket.photos_done = True
    await uow.tickets.save(ticket)
    intro = (
        ""
        if next_step(ticket) is Step.PHOTOS
        else desk.render(
            ticket.language,
            "customer/photos_received.html",
            count=len(ticket.photos),
            most=MAX_PHOTOS,
            full=full,
        )
    )
    say = question(desk, ticket, next_step(ticket))
    # the answer waits for the album's end; a later photo's answer replaces it
    hold = _album_hold(desk, said)
    uow.outbox.to_customer(
        ticket.customer,
        Say(f"{intro}\n\n{say.text}" if intro else say.text, say.choices),
        ticket_id=ticket.id,
        not_before=now + hold,
        collapse=_photos_ack(ticket),
    )


# -- /cancel -------------------------------------------------------------------------------


async def cancel(
    uow: UnitOfWork, desk: Desk, said: Said, ticket: Ticket | None, now: datetime
) -> None:
    """Cancel the complaint being written (a submitted one stays with staff)."""
    if ticket is None:
        text = desk.render(said.language, "customer/cancel_nothing.html")
        uow.outbox.to_customer(said.who, Say(text, clear_choices=True))
        return
    if ticket.status is not Status.INTAKE:
        _say(uow, desk, ticket, "customer/cancel_submitted.html")
        return
    await store(uow, ticket, said, now)
    ticket.cancel(now)
    await uow.tickets.save(ticket)
    await uow.outbox.drop(_photos_ack(ticket))
    _say(uow, desk, ticket, "customer/cancelled.html", clear=True)


# -- taps ----------------------------------------------------------------------------------


def stale(desk: Desk, language: str) -> Answer:
    """An old, forged or foreign button: a short alert, nothing else."""
    return Answer(desk.render(language, "common/stale_button.txt"), alert=True)


async def tapped(uow: UnitOfWork, desk: Desk, tap: Tap, now: datetime) -> Answer:
    """The customer tapped one of the desk's choices."""
    key = Key.parse(tap.key)
    if key.prefix == "i":
        return await intake_tapped(uow, desk, tap, key, now)
    if key.prefix == "o":
        return await remedy_chosen(uow, desk, tap, key, now)
    if key.prefix == "r":
        return await satisfaction_rated(uow, desk, tap, key, now)
    return stale(desk, tap.language)


async def intake_tapped(uow: UnitOfWork, desk: Desk, tap: Tap, key: Key, now: datetime) -> Answer:
    """A choice during the intake: a category, no order number, the photos done, submit..."""
    ticket = await uow.tickets.active_for_customer(tap.who)
    if ticket is None or ticket.status is not Status.INTAKE:
        return stale(desk, tap.language)
    action, value = key.part(0), key.part(1)
    if action in ("change", "cancel", "submit"):
        await uow.outbox.drop(_photos_ack(ticket))  # a summary still waiting is out of date
    intro = ""
    if action == "cat":
        category = desk.policy.intake.category(value)
        if category is None:
            return stale(desk, tap.language)
        ticket.category = category.key
        intro = desk.render(
            ticket.language,
            "customer/noted_choice.html",
            choice=category.label.in_(ticket.language),
        )
    elif action == "noorder":
        if ticket.order_number:
            return stale(desk, tap.language)
        ticket.order_skipped = True
    elif action in ("photosdone", "nophotos"):
        if ticket.photos_done:
            return stale(desk, tap.language)
        ticket.photos_done = True
    elif action == "change":
        _used(uow, tap)
        rendered = desk.render(ticket.language, "customer/ask_change.html")
        uow.outbox.to_customer(
            tap.who, Say(rendered, choices.change(ticket.language)), ticket_id=ticket.id
        )
        return Answer()
    elif action == "edit":
        if value not in {s.value for s in Step} - {Step.CONFIRM.value}:
            return stale(desk, tap.language)
        reset_answer(ticket, Step(value))
    elif action == "back":
        pass
    elif action == "cancel":
        ticket.cancel(now)
        await uow.tickets.save(ticket)
        _used(uow, tap)
        _say(uow, desk, ticket, "customer/cancelled.html", clear=True)
        return Answer()
    elif action == "submit":
        if next_step(ticket) is not Step.CONFIRM:
            return stale(desk, tap.language)
        await submitted(uow, desk, ticket, now)
        _used(uow, tap)
        return Answer()
    else:
        return stale(desk, tap.language)
    await uow.outbox.drop(_photos_ack(ticket))
    await _ask_next(uow, desk, ticket, intro)
    _used(uow, tap)
    return Answer()


def _used(uow: UnitOfWork, tap: Tap) -> None:
    """The choices under the tapped message are used up: take them off, so an old one cannot be
    tapped again."""
    if tap.message_ref:
        uow.outbox.clear_choices(tap.who, tap.message_ref)


async def submitted(uow: UnitOfWork, desk: Desk, ticket: Ticket, now: datetime) -> None:
    """The ticket goes to staff; the customer hears what happens next, and by when."""
    await common.submit(uow, desk, ticket, now)
    hours = desk.policy.hours
    _say(
        uow,
        desk,
        ticket,
        "customer/submitted.html",
        now=now,
        back_at=None if hours.is_open(now) else hours.next_opening(now),
        first_response=desk.sla.first_response,
        resolution=desk.sla.resolution,
    )
    await relay_intake_files(uow, desk, ticket)


async def relay_intake_files(uow: UnitOfWork, desk: Desk, ticket: Ticket) -> None:
    """Voice, video and files sent during the intake answer no question, nor do messages the
    customer changed meanwhile: staff see them after the card."""
    assert ticket.id is not None
    pending = await uow.messages.pending_relay(ticket.id)
    header = desk.render(desk.staff_language, "staff/customer_header.html", ticket=ticket)
    for message in pending:
        if message.kind == EDIT:
            for piece in common.texts(header, message.text or ""):
                uow.outbox.to_thread(ticket.id, Say(piece), relay=True, urgency=Urgency.RELAY)
            continue
        if message.file_id is None or message.kind not in FILE_KINDS:
            continue
        text = f"{header}\n{common.escape(message.text)}" if message.text else header
        uow.outbox.to_thread(
            ticket.id,
            Say(text, attachments=(Attachment(message.kind, message.file_id, ticket.channel),)),
            relay=True,
            urgency=Urgency.RELAY,
        )
    await uow.messages.mark_relayed([m.id for m in pending])


async def remedy_chosen(uow: UnitOfWork, desk: Desk, tap: Tap, key: Key, now: datetime) -> Answer:
    """The customer's choice: confirmed to them (what and by when), and staff told what to do."""
    ticket_id, option_index = key.number(0), key.number(2)
    ticket = await uow.tickets.get(ticket_id) if ticket_id else None
    if ticket is None or ticket.customer != tap.who or option_index is None:
        return stale(desk, tap.language)
    try:
        tier = desk.policy.ladder.tier(key.part(1))
        option = tier.option(option_index)
        ticket.choose_remedy(tier.key, option_index, now)
    except (TicketStateError, UnknownRemedy):
        return stale(desk, ticket.language)
    await uow.tickets.save(ticket)
    _used(uow, tap)
    due = now + option.within
    _say(uow, desk, ticket, "customer/remedy_chosen.html", option=option, due=due)
    common.tell_thread(
        uow,
        desk,
        ticket,
        "staff/remedy_chosen.html",
        rows=choices.done(ticket.id or 0, desk.staff_language),
        option=option,
        due=due,
        urgency=Urgency.RELAY,
    )
    common.refresh_card(uow, desk, ticket)
    return Answer()


# -- after the fix -------------------------------------------------------------------------


async def satisfaction_rated(
    uow: UnitOfWork, desk: Desk, tap: Tap, key: Key, now: datetime
) -> Answer:
    """Thank a content customer; reopen and page the managers for a score of 1 or 2. Score 0
    is "no comment to add"."""
    ticket_id, score = key.number(0), key.number(1)
    ticket = await uow.tickets.get(ticket_id) if ticket_id else None
    if ticket is None or ticket.customer != tap.who or score is None:
        return stale(desk, tap.language)
    if score == 0:
        ticket.decline_comment()
        await uow.tickets.save(ticket)
        _used(uow, tap)
        return Answer(desk.render(ticket.language, "customer/comment_declined.txt"))
    try:
        reopened = ticket.rate(score, now)
    except TicketStateError:
        return stale(desk, ticket.language)
    await uow.tickets.save(ticket)
    _used(uow, tap)
    rows = choices.no_comment(ticket.id or 0, ticket.language)
    if reopened:
        _say(uow, desk, ticket, "customer/rated_low.html", rows=rows)
        managers = desk.managers()
        common.tell_thread(
            uow,
            desk,
            ticket,
            "staff/rated_low.html",
            managers=managers,
            urgency=Urgency.RELAY,
            alert=True,
        )
    else:
        _say(uow, desk, ticket, "customer/rated_thanks.html", rows=rows)
        common.tell_thread(uow, desk, ticket, "staff/rated.html")
    common.refresh_card(uow, desk, ticket)
    return Answer()


async def follow_up_again(
    uow: UnitOfWork, desk: Desk, ticket: Ticket, said: Said, now: datetime
) -> None:
    """The satisfaction question never reached the customer; now that they write again (and
    can be answered), staff see their message and the question is asked."""
    await store(uow, ticket, said, now)
    relay(uow, desk, ticket, said, now)
    common.ask_follow_up(uow, desk, ticket, now)
    await uow.tickets.save(ticket)


async def comment_received(
    uow: UnitOfWork, desk: Desk, ticket: Ticket, said: Said, now: datetime
) -> None:
    """The customer's comment on how it was handled: kept, and shown to staff."""
    ticket.add_comment(said.text or "")
    await store(uow, ticket, said, now)
    await uow.tickets.save(ticket)
    common.tell_thread(uow, desk, ticket, "staff/comment.html", comment=said.text or "")
    _say(uow, desk, ticket, "customer/comment_thanks.html")


# -- reaching the customer -----------------------------------------------------------------


async def unreachable(
    uow: UnitOfWork,
    desk: Desk,
    who: CustomerRef,
    reason: str,
    now: datetime,
    ticket_id: int | None = None,
) -> None:
    """Nothing reaches the customer any more (they blocked the bot): their ticket (the one the
    message was about, or the open one) says so on its card, and staff are told to use the
    phone number."""
    ticket = await uow.tickets.get(ticket_id) if ticket_id else None
    if ticket is None or ticket.customer != who:
        ticket = await uow.tickets.active_for_customer(who)
    if ticket is None or ticket.customer_blocked:
        return
    ticket.mark_undeliverable(now, reason)
    if ticket.follow_up_pending:
        ticket.follow_up_undelivered(now, reason)
    await uow.tickets.save(ticket)
    if ticket.is_with_staff or ticket.status is Status.RESOLVED:
        common.tell_thread(uow, desk, ticket, "staff/undeliverable.html", urgency=Urgency.RELAY)
        common.refresh_card(uow, desk, ticket)


async def reachable(uow: UnitOfWork, desk: Desk, who: CustomerRef) -> None:
    """A message reached the customer again (or they unblocked the bot)."""
    ticket = await uow.tickets.active_for_customer(who)
    if ticket is not None and ticket.customer_blocked:
        ticket.mark_reachable()
        await uow.tickets.save(ticket)
        common.refresh_card(uow, desk, ticket)


async def refused(
    uow: UnitOfWork, desk: Desk, ticket_id: int | None, reason: str, now: datetime
) -> None:
    """The messenger refused a message to the customer for another reason: staff are told. A
    messenger's window ("window: ..."; WeChat answers only within 48 hours, 5 messages) means
    the customer can be reached by phone until they write again. A satisfaction question that
    cannot reach them is not taken as answered by silence: the ticket waits for them."""
    ticket = await uow.tickets.get(ticket_id) if ticket_id else None
    if ticket is not None and ticket.follow_up_pending:  # the question cannot be answered
        ticket.follow_up_undelivered(now, reason)
        await uow.tickets.save(ticket)
        common.tell_thread(uow, desk, ticket, "staff/follow_up_undelivered.html", reason=reason)
        common.refresh_card(uow, desk, ticket)
        return
    if ticket is not None and ticket.status is not Status.INTAKE:
        closed = reason.startswith("window:")
        template = "staff/out_of_window.html" if closed else "staff/refused.html"
        common.tell_thread(
            uow,
            desk,
            ticket,
            template,
            reason=reason,
            urgency=Urgency.RELAY if closed else Urgency.CARD,
        )


async def not_handled(uow: UnitOfWork, desk: Desk, said: Said) -> None:
    """A customer's message that could not be handled, however often it was tried (a fault of
    the desk's own): it is set aside so their chat moves on, and staff hear whose it was, so
    that a person answers them."""
    ticket = await uow.tickets.active_for_customer(said.who)
    text = desk.render(
        desk.staff_language,
        "staff/not_handled.html",
        said=said,
        ticket=ticket,
        excerpt=(said.text or "")[:200],
    )
    uow.outbox.to_room(Say(text), urgency=Urgency.RELAY, alert=True)


async def edited(uow: UnitOfWork, desk: Desk, said: Said, now: datetime) -> None:
    """The customer changed a message they had sent: the new wording is kept with their ticket
    and shown to staff, marked as a change (during the intake, after the card). It answers no
    question: the intake goes on where it was."""
    ticket = await uow.tickets.active_for_customer(said.who)
    if ticket is None or not said.text:
        return
    mark = desk.render(desk.staff_language, "staff/edited_mark.txt")
    change = replace(said, kind=EDIT, text=f"{mark}\n{said.text}", attachment=None, album=None)
    intake = ticket.status is Status.INTAKE
    await store(uow, ticket, change, now, relay_later=intake)
    await uow.tickets.save(ticket)
    if not intake:
        relay(uow, desk, ticket, change, now)
