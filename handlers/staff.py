"""Staff, in the staff room: replies reach the customer signed with their first name; they take
tickets and mark the chosen remedy done. The manager's buttons are refused here."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.domain import history
from bot.domain import phrases as phrasebook
from bot.domain.clock import next_deadline
from bot.domain.guard import find_banned
from bot.domain.insight import Responsible, RootCause
from bot.domain.messages import Answer, Say, StaffSaid, Urgency
from bot.domain.tickets import Actor, Status, Ticket, TicketStateError, parse_reference
from bot.labels import LABELS, label
from handlers import choices, common, manager
from handlers.choices import Key
from handlers.context import Desk
from storage.uow import UnitOfWork

CAPTIONED = {"photo", "video", "document", "voice", "audio", "animation"}
MANAGERS_ONLY = {"tier", "close", "reopen"}
ON_CARD_ONLY = {"take", "tier", "close", "reopen", "cause"}


async def replied(uow: UnitOfWork, desk: Desk, said: StaffSaid, now: datetime) -> bool:
    """Relay the reply to the customer, or hold it back when it has a banned phrase; the first
    human answer is recorded and whoever gives it takes the ticket. True: it is on its way."""
    ticket = await uow.tickets.get(said.ticket_id)
    if ticket is None or ticket.status is Status.CANCELLED:
        return False
    assert ticket.id is not None
    banned = find_banned(said.text or "", desk.policy.banned)
    if banned is not None:  # never reaches the customer: the staff member is told why
        ticket.hold_back(said.actor, banned.phrase, now)
        await uow.tickets.save(ticket)
        common.tell_thread(
            uow,
            desk,
            ticket,
            "staff/banned_phrase.html",
            reply_to=said.ref,
            urgency=Urgency.RELAY,
            banned=banned,
            actor=said.actor,
            to=said.actor,
        )
        return False
    signature = desk.render(
        ticket.language, "customer/staff_signature.html", name=said.actor.name, policy=desk.policy
    )
    text = said.text or ""
    if said.attachment is None:
        says = [Say(piece) for piece in common.texts(signature, text)]
    elif said.kind in CAPTIONED:
        caption = f"{signature}\n{common.escape(text)}" if text else signature
        says = [Say(caption, attachments=(said.attachment,))]
    else:  # a sticker, a round video: the signature first, then the thing itself
        says = [Say(signature), Say(attachments=(said.attachment,))]
    for index, say in enumerate(says):
        last = index == len(says) - 1  # once it has all arrived, it counts as an answer
        uow.outbox.to_customer(
            ticket.customer, say, ticket_id=ticket.id, answer_by=said.actor if last else None
        )
    await uow.messages.add(
        ticket.id,
        direction="out",
        sender=said.actor,
        kind=said.kind,
        text=said.text,
        file_id=said.attachment.ref if said.attachment else None,
        chat_id="staff",
        message_id=said.ref,
        at=now,
    )
    return True


async def answer_delivered(
    uow: UnitOfWork, desk: Desk, ticket_id: int, actor: Actor, now: datetime
) -> None:
    """A staff answer reached the customer: the first human response is recorded, and whoever
    gives it takes the ticket. (An answer that did not arrive is no response.)"""
    ticket = await uow.tickets.get(ticket_id)
    if ticket is None or not ticket.is_with_staff:
        return  # a word to calm them while they were still writing counts for nothing here
    first = ticket.record_answer(actor, now)
    if ticket.taken_by is None:  # who answers first handles it
        ticket.take(actor, now)
    await uow.tickets.save(ticket)
    if first:
        common.refresh_card(uow, desk, ticket)


async def answer_unsure(uow: UnitOfWork, desk: Desk, ticket_id: int, actor: Actor) -> None:
    """A staff answer went out but the messenger never said it arrived: it is not sent again
    (it may be there), and its writer hears so, to look or to say it once more."""
    ticket = await uow.tickets.get(ticket_id)
    if ticket is None:
        return
    common.tell_thread(
        uow, desk, ticket, "staff/answer_unsure.html", actor=actor, to=actor, urgency=Urgency.RELAY
    )


async def card_tapped(
    uow: UnitOfWork, desk: Desk, actor: Actor, key: str, message_ref: str | None, now: datetime
) -> Answer:
    """A button on a ticket's card (or under a message of its thread)."""
    lang = desk.staff_language
    parsed = Key.parse(key)
    action, ticket_id = parsed.part(0), parsed.number(1)
    ticket = await uow.tickets.get(ticket_id) if parsed.prefix == "t" and ticket_id else None
    if ticket is None:
        return Answer(desk.render(lang, "common/stale_button.txt"), alert=True)
    if (
        ticket.card_message_id is None
        and action in ON_CARD_ONLY
        and message_ref is not None
        and message_ref.isdigit()
    ):  # a tap a moment before the sender stored the card's id: the tapped message is the card
        ticket.card_message_id = int(message_ref)
    if action in MANAGERS_ONLY:
        if actor.role != "manager":
            return Answer(desk.render(lang, "staff/only_manager.txt"), alert=True)
        return await manager.card_tapped(uow, desk, actor, ticket, parsed, now)
    if action == "take":
        return await took(uow, desk, actor, ticket, now)
    if action == "cause":
        return ask_cause(uow, desk, ticket)
    if action in ("rc", "rs"):
        field = "root_cause" if action == "rc" else "responsible"
        return await fact_tapped(uow, desk, actor, ticket, field, parsed.part(2), now)
    if action == "done":
        return await remedy_done(uow, desk, actor, ticket, message_ref, now)
    if action == "phrases":
        show_phrases(uow, desk, actor, ticket)
        return Answer()
    if action == "ph":
        return await phrase_tapped(uow, desk, actor, ticket, parsed.number(2), now)
    if action == "hist":
        return await history_tapped(uow, desk, actor, ticket, parsed.number(2))
    return Answer(desk.render(lang, "common/stale_button.txt"), alert=True)


def ask_cause(uow: UnitOfWork, desk: Desk, ticket: Ticket) -> Answer:
    """Why it happened and where: buttons in the ticket's thread."""
    assert ticket.id is not None
    common.tell_thread(
        uow,
        desk,
        ticket,
        "staff/ask_cause.html",
        rows=choices.causes(ticket.id, desk.staff_language),
        urgency=Urgency.RELAY,
    )
    return Answer()


async def fact_tapped(
    uow: UnitOfWork,
    desk: Desk,
    actor: Actor,
    ticket: Ticket,
    field: str,
    value: str,
    now: datetime,
) -> Answer:
    lang = desk.staff_language
    known = RootCause if field == "root_cause" else Responsible
    if value not in {k.value for k in known}:
        return Answer(desk.render(lang, "common/stale_button.txt"), alert=True)
    await set_facts(uow, desk, actor, ticket, now, **{field: value})
    prefix = "cause" if field == "root_cause" else "where"
    return Answer(desk.render(lang, "staff/fact_set.txt", what=label(lang, f"{prefix}_{value}")))


async def set_facts(
    uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, now: datetime, **facts: str
) -> list[str]:
    """Staff say what the complaint is about and why: the card shows it, and a product or
    batch that draws several complaints alerts the managers."""
    changed = ticket.set_facts(actor, now, **facts)
    if not changed:
        return changed
    await uow.tickets.save(ticket)
    common.refresh_card(uow, desk, ticket)
    if {"product", "batch"} & set(changed):
        await common.check_batches(uow, desk, ticket, now)
    return changed


FACT_COMMANDS = {"/product": "product", "/batch": "batch", "/cause": "root_cause"}
CAUSE_WORDS = {
    "product_defect": ("产品", "产品缺陷", "product", "defect"),
    "service_mistake": ("服务", "服务失误", "service"),
    "process_gap": ("流程", "流程缺失", "process"),
}
WHERE_WORDS = {
    "store": ("门店", "store"),
    "supply_chain": ("供应链", "supply", "supply_chain"),
    "courier": ("配送", "快递", "courier", "delivery"),
}


def not_a_thread(uow: UnitOfWork, desk: Desk, actor: Actor) -> None:
    """A reply to a message of the desk's that is no ticket's thread (a digest, a printout, an
    alert): it reaches no customer, and the person hears how to answer one."""
    text = desk.render(desk.staff_language, "staff/not_a_thread.html", actor=actor)
    uow.outbox.to_room(Say(text), urgency=Urgency.RELAY, to=actor)


def not_handled(
    uow: UnitOfWork, desk: Desk, name: str, text: str, to: Actor | None = None
) -> None:
    """A staff member's message or tap that could not be handled, however often it was tried
    (a fault of the desk's own): it went nowhere, and they hear so, to send it again or act
    another way. `to`: that person only (a room of 1:1 chats)."""
    say = desk.render(desk.staff_language, "staff/staff_not_handled.html", name=name, text=text)
    uow.outbox.to_room(Say(say), urgency=Urgency.RELAY, to=to)


def no_ticket_for(uow: UnitOfWork, desk: Desk, command: str, actor: Actor | None = None) -> None:
    """A fact command outside any ticket's thread."""
    text = desk.render(desk.staff_language, "staff/fact_where.html", command=command)
    uow.outbox.to_room(Say(text), urgency=Urgency.RELAY, to=actor)


async def fact_command(
    uow: UnitOfWork,
    desk: Desk,
    actor: Actor,
    ticket: Ticket,
    command: str,
    args: str,
    now: datetime,
) -> None:
    """`/product 玫瑰花束`, `/batch B20261120`, `/cause 产品 供应链` in a ticket's thread."""
    lang = desk.staff_language
    value = " ".join(args.split())[:120]
    facts: dict[str, str] = {}
    if command == "/cause":
        said = value.lower()  # "产品 供应链", "产品缺陷，供应链", "product supply"
        cause = next((k for k, ws in CAUSE_WORDS.items() if any(w in said for w in ws)), None)
        where = next((k for k, ws in WHERE_WORDS.items() if any(w in said for w in ws)), None)
        if cause:
            facts["root_cause"] = cause
        if where:
            facts["responsible"] = where
    elif value:
        facts[FACT_COMMANDS[command]] = value
    if not facts:
        common.tell_thread(
            uow, desk, ticket, "staff/fact_usage.html", command=command, urgency=Urgency.RELAY,
            to=actor,
        )  # fmt: skip
        return
    if not await set_facts(uow, desk, actor, ticket, now, **facts):
        return  # already so: nothing to say again
    shown = [
        label(lang, f"cause_{value}") if name == "root_cause" else
        label(lang, f"where_{value}") if name == "responsible" else value
        for name, value in facts.items()
    ]  # fmt: skip
    common.tell_thread(
        uow, desk, ticket, "staff/facts_recorded.html", actor=actor, shown=shown,
        urgency=Urgency.RELAY,
    )  # fmt: skip


async def took(uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, now: datetime) -> Answer:
    """The staff member takes the ticket; the card shows who has it."""
    lang = desk.staff_language
    try:
        if ticket.taken_by is not None and ticket.taken_by.id != actor.id:
            raise TicketStateError("someone has it")  # two taps at once: the first has it
        ticket.take(actor, now)
    except TicketStateError:
        return Answer(desk.render(lang, "staff/take_refused.txt", ticket=ticket), alert=True)
    await uow.tickets.save(ticket)
    common.refresh_card(uow, desk, ticket)
    return Answer(desk.render(lang, "staff/taken.txt", ticket=ticket))


async def remedy_done(
    uow: UnitOfWork,
    desk: Desk,
    actor: Actor,
    ticket: Ticket,
    message_ref: str | None,
    now: datetime,
) -> Answer:
    """Staff carried out the chosen remedy: the ticket is resolved and the customer told."""
    lang = desk.staff_language
    if ticket.status is not Status.REMEDY_CHOSEN:
        return Answer(desk.render(lang, "common/stale_button.txt"), alert=True)
    assert ticket.id is not None
    ticket.resolve(actor, now, "remedy carried out")
    await uow.tickets.save(ticket)
    if message_ref is not None and message_ref != str(ticket.card_message_id):
        uow.outbox.clear_room_choices(ticket.id, message_ref)
    option = None
    if ticket.tier and ticket.chosen_option is not None:
        option = desk.policy.ladder.tier(ticket.tier).option(ticket.chosen_option)
    common.tell_customer(uow, desk, ticket, "customer/resolved.html", option=option)
    common.tell_thread(uow, desk, ticket, "staff/resolved.html", actor=actor)
    common.refresh_card(uow, desk, ticket)
    return Answer(desk.render(lang, "staff/resolved_alert.txt", ticket=ticket))


async def ticket_card(uow: UnitOfWork, desk: Desk, reference: str) -> Say:
    """A ticket's card, read-only, for a staff member who opened it from a digest."""
    lang = desk.staff_language
    ticket = await uow.tickets.get(parse_reference(reference) or 0)
    if ticket is None:
        return Say(desk.render(lang, "staff/no_such_ticket.txt"))
    card = common.card(desk, ticket)
    note = desk.render(lang, "staff/card_private_note.html", ticket=ticket)
    return Say(f"{card.text}\n\n{note}")


# -- typed actions: what a button does, typed (a chat where the buttons may not show) --------

REFERENCE = re.compile(r"(?:T-?(?P<t>\d{1,9})|#(?P<n>\d{1,9}))", re.IGNORECASE)
TYPED = re.compile(
    r"^\s*(?P<word>[^\s\d#]+)\s*(?P<number>\d{1,2})?\s+" + REFERENCE.pattern + r"\s*$",
    re.IGNORECASE,
)
ADDRESSED = re.compile(r"^\s*" + REFERENCE.pattern + r"(?:[\s:：,，]+(?P<rest>.*))?$", re.S | re.I)


def _typed_words(name: str) -> set[str]:
    return {words[name].lower() for words in LABELS.values() if name in words}


def typed(desk: Desk, text: str) -> tuple[str, int | None, int] | None:
    """`跟进 T-000123`, `方案 2 T-000123`, `结案 #123`: (take | tier | done, the number, the
    ticket's id); None when the text is no typed action."""
    found = TYPED.match(text)
    if found is None:
        return None
    word = found.group("word").lower()
    action = next(
        (a for a in ("take", "tier", "done") if word in _typed_words(f"typed_{a}")), None
    )
    if action is None:
        return None
    number = int(found.group("number")) if found.group("number") else None
    return action, number, int(found.group("t") or found.group("n"))


def addressed(text: str) -> tuple[int, str] | None:
    """A message that starts with a ticket's reference (`T-000123 …`, `#123 …`): the ticket's
    id and the rest."""
    found = ADDRESSED.match(text)
    if found is None:
        return None
    return int(found.group("t") or found.group("n")), (found.group("rest") or "").strip()


async def typed_action(
    uow: UnitOfWork, desk: Desk, actor: Actor, text: str, now: datetime
) -> Answer | None:
    """A typed action becomes the key its button carries, and is handled as that tap (the
    same checks: a tier from someone who is not a manager is refused). None: not an action."""
    found = typed(desk, text)
    if found is None:
        return None
    action, number, ticket_id = found
    lang = desk.staff_language
    ticket = await uow.tickets.get(ticket_id)
    if ticket is None:
        return Answer(desk.render(lang, "staff/no_such_ticket.txt"), alert=True)
    if action == "take":
        key = choices.card_key("take", ticket_id)
    elif action == "tier":
        tiers = desk.policy.ladder.tiers
        if number is None or not 1 <= number <= len(tiers):
            return Answer(desk.render(lang, "staff/typed_tier_usage.txt", ticket=ticket,
                                      tiers=[t.label.in_(lang) for t in tiers]))  # fmt: skip
        key = choices.card_key("tier", ticket_id, tiers[number - 1].key)
    else:
        done = ticket.status is Status.REMEDY_CHOSEN
        key = choices.card_key("done" if done else "close", ticket_id)
    return await card_tapped(uow, desk, actor, key, None, now)


def ticket_of_key(key: str) -> int | None:
    """The ticket a tapped card key is about (None: none), so a room can follow who works on
    what without knowing the keys' format."""
    parsed = Key.parse(key)
    return parsed.number(1) if parsed.prefix == "t" else None


# -- the shop's phrases (快捷回复) -------------------------------------------------------------

PHRASE_COMMAND = "/p"
HISTORY_COMMAND = "/history"
EVER = datetime(2000, 1, 1, tzinfo=UTC)  # a customer's whole history starts after this


async def customer_history(uow: UnitOfWork, ticket: Ticket) -> list[Ticket]:
    """The customer's tickets, this one too, newest first: the same person by their messenger
    id, and on the other messenger by the phone number they gave."""
    assert ticket.id is not None
    phone = history.phone_of(ticket.contact)
    others = await uow.tickets.of_customer(ticket.customer, phone, EVER, ticket.id)
    return sorted([ticket, *others], key=lambda t: t.id or 0, reverse=True)


async def history_command(uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket) -> None:
    """`/history` in a ticket's thread: the customer's tickets, newest first, each with how it
    ended, and a button that shows one's card."""
    assert ticket.id is not None
    lang = desk.staff_language
    tickets = await customer_history(uow, ticket)
    items = [common.past_shown(desk, history.past(t), lang) for t in tickets]
    common.tell_thread(
        uow,
        desk,
        ticket,
        "staff/history.html",
        rows=choices.history(ticket.id, [t.id for t in tickets if t.id and t.id != ticket.id]),
        items=items,
        urgency=Urgency.RELAY,
        to=actor,
    )


async def history_tapped(
    uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, other_id: int | None
) -> Answer:
    """A ticket of the customer's history: its card, shown to whoever asked (only the same
    customer's: forged data gets the stale answer)."""
    lang = desk.staff_language
    tickets = {t.id: t for t in await customer_history(uow, ticket)}
    other = tickets.get(other_id) if other_id else None
    if other is None:
        return Answer(desk.render(lang, "common/stale_button.txt"), alert=True)
    shown = common.card(desk, other)
    common.tell_thread(
        uow,
        desk,
        ticket,
        "staff/history_card.html",
        card=shown.text,
        urgency=Urgency.RELAY,
        to=actor,
    )
    return Answer()


def phrases_where(
    uow: UnitOfWork, desk: Desk, actor: Actor, template: str = "staff/phrase_where.html"
) -> None:
    """`/p` outside any ticket's thread (a room of 1:1 chats: with no current ticket): how to
    use it."""
    text = desk.render(desk.staff_language, template)
    uow.outbox.to_room(Say(text), urgency=Urgency.RELAY, to=actor)


def show_phrases(
    uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, template: str = ""
) -> None:
    """The shop's phrases as buttons in the ticket's thread (a room of 1:1 chats: to whoever
    asked): a tap sends one to the customer."""
    common.tell_thread(
        uow,
        desk,
        ticket,
        template or "staff/phrases.html",
        rows=choices.phrases(ticket.id or 0, desk.policy.phrases),
        phrases=desk.policy.phrases,
        urgency=Urgency.RELAY,
        to=actor,
    )


def phrase_facts(desk: Desk, ticket: Ticket) -> dict[str, str]:
    """The ticket's facts a phrase may use, in the customer's language."""
    lang = ticket.language
    ladder = desk.policy.ladder
    remedy = (
        ladder.tier(ticket.tier).option(ticket.chosen_option).label.in_(lang)
        if ticket.tier and ticket.chosen_option is not None
        else ""
    )
    due = next_deadline(ticket, desk.sla, desk.policy.hours)
    deadline = desk.render(lang, "common/phrase_deadline.txt", due=due.due_at if due else None)
    return {
        "customer": ticket.customer_name,
        "ticket": ticket.reference,
        "order": ticket.order_number or ticket.reference,
        "category": common.category_label(desk, ticket, lang),
        "deadline": deadline,
        "remedy": remedy,
    }


async def send_phrase(
    uow: UnitOfWork,
    desk: Desk,
    actor: Actor,
    ticket: Ticket,
    phrase: phrasebook.Phrase,
    ref: str | None,
    now: datetime,
) -> bool:
    """The phrase, filled with the ticket's facts, goes to the customer as this staff member's
    answer: exactly as a typed reply (guarded, signed, counted as the first answer)."""
    assert ticket.id is not None
    text = phrasebook.fill(phrase.text.in_(ticket.language), phrase_facts(desk, ticket))
    said = StaffSaid(actor=actor, ticket_id=ticket.id, text=text, ref=ref)
    return await replied(uow, desk, said, now)


async def phrase_tapped(
    uow: UnitOfWork,
    desk: Desk,
    actor: Actor,
    ticket: Ticket,
    index: int | None,
    now: datetime,
) -> Answer:
    """A phrase's button: it is sent, or (a policy changed since the buttons) the tap is stale."""
    lang = desk.staff_language
    known = desk.policy.phrases
    if index is None or index >= len(known):
        return Answer(desk.render(lang, "common/stale_button.txt"), alert=True)
    if not await send_phrase(uow, desk, actor, ticket, known[index], None, now):
        return Answer(desk.render(lang, "common/stale_button.txt"), alert=True)
    return Answer(desk.render(lang, "staff/phrase_sent.txt", name=known[index].name))


async def phrase_command(
    uow: UnitOfWork,
    desk: Desk,
    actor: Actor,
    ticket: Ticket,
    args: str,
    ref: str | None,
    now: datetime,
) -> None:
    """`/p` in a ticket's thread: the phrases as buttons; `/p NAME`: that phrase, sent at once
    (a name the shop has not written: the list, with its buttons)."""
    name = args.strip()
    if not name:
        show_phrases(uow, desk, actor, ticket)
        return
    phrase = phrasebook.find(desk.policy.phrases, name)
    if phrase is None:
        show_phrases(uow, desk, actor, ticket, "staff/phrase_unknown.html")
        return
    await send_phrase(uow, desk, actor, ticket, phrase, ref, now)
