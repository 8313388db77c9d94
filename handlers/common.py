"""Steps several actors share: the ticket's card, saying things to the customer and into the
ticket's thread, submitting a ticket, and the alarm words."""

from __future__ import annotations

import contextlib
import html
from datetime import datetime, timedelta
from typing import Any

from bot.domain.clock import next_deadline
from bot.domain.guard import find_signals
from bot.domain.history import HISTORY_WINDOW, phone_of, raised_severity, summarise
from bot.domain.insight import alert_due
from bot.domain.messages import Attachment, CardSummary, Say, Urgency
from bot.domain.orders import Order, normalise_number
from bot.domain.signals import suggest_severity
from bot.domain.tickets import Actor, Ticket, reference
from bot.labels import CHANNELS, label
from bot.text import split_text
from handlers import choices
from handlers.choices import Rows
from handlers.context import Desk
from storage.uow import NewUnitOfWork, UnitOfWork

REPEAT_WINDOW = timedelta(days=30)
TEXT_LIMIT = 4096
CARD_STORY_LIMIT = 1500
ALBUM_MOST = 10  # photos shown together


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def category_label(desk: Desk, ticket: Ticket, language: str) -> str:
    category = desk.policy.intake.category(ticket.category or "")
    return category.label.in_(language) if category else "—"


def severity_label(desk: Desk, ticket: Ticket, language: str) -> str:
    if not ticket.severity:
        return ""
    return desk.policy.ladder.tier(ticket.severity).label.in_(language)


def card(desk: Desk, ticket: Ticket) -> Say:
    """The ticket's card as staff see it: the summary, where it stands, and its buttons."""
    lang = desk.staff_language
    ladder = desk.policy.ladder
    story = "\n".join(ticket.story)
    tier = ladder.tier(ticket.tier).label.in_(lang) if ticket.tier else ""
    option = (
        ladder.tier(ticket.tier).option(ticket.chosen_option).label.in_(lang)
        if ticket.tier and ticket.chosen_option is not None
        else ""
    )
    text = desk.render(
        lang,
        "staff/card.html",
        ticket=ticket,
        policy=desk.policy,
        category=category_label(desk, ticket, lang),
        story=story[:CARD_STORY_LIMIT],
        story_cut=len(story) > CARD_STORY_LIMIT,
        tier=tier,
        option=option,
        severity=severity_label(desk, ticket, lang),
        deadline=next_deadline(ticket, desk.sla, desk.policy.hours),
        repeat=reference(ticket.repeat_of) if ticket.repeat_of else "",
        history=history_shown(desk, ticket, lang),
        how_to_answer=desk.how_to_answer,
    )
    return Say(text, choices.card(ticket, ladder, lang), summary=summary(desk, ticket))


def history_shown(desk: Desk, ticket: Ticket, lang: str) -> dict[str, Any] | None:
    """The customer's history as the card names it: references and labels."""
    kept = ticket.history
    if not kept:
        return None
    last = [past_shown(desk, past, lang) for past in kept.get("last") or []]  # type: ignore[union-attr]
    return {
        "count": kept.get("count"),
        "in_window": kept.get("in_window"),
        "window_days": desk.policy.repeat_rule.window.days,
        "open": reference(int(str(kept["open"]))) if kept.get("open") else None,
        "last": last,
    }


def past_shown(desk: Desk, past: dict[str, Any], lang: str) -> dict[str, Any]:
    """One earlier complaint with its labels: reference, category, remedy, status, score."""
    ladder = desk.policy.ladder
    category = desk.policy.intake.category(past.get("category") or "")
    tier_key, option = past.get("tier"), past.get("option")
    tier = option_label = None
    with contextlib.suppress(LookupError):  # a tier the policy no longer has
        if tier_key:
            tier = ladder.tier(tier_key).label.in_(lang)
            if option is not None:
                option_label = ladder.tier(tier_key).option(option).label.in_(lang)
    return {
        "id": past["id"],
        "ref": reference(past["id"]),
        "category": category.label.in_(lang) if category else "—",
        "tier": tier,
        "option": option_label,
        "status": past.get("status"),
        "satisfaction": past.get("satisfaction"),
        "submitted_at": past.get("submitted_at"),
    }


def summary(desk: Desk, ticket: Ticket) -> CardSummary:
    """The card as a title and a few rows, for rooms whose cards are not free text, and the
    line that says how to act by typing (where the buttons may not show)."""
    lang = desk.staff_language
    category, severity = category_label(desk, ticket, lang), severity_label(desk, ticket, lang)
    title = desk.render(lang, "staff/card_title.txt", ticket=ticket, category=category,
                        severity=severity)  # fmt: skip
    channel = CHANNELS.get(lang, CHANNELS["en"]).get(ticket.channel, ticket.channel.title())
    taken = ticket.taken_by.name if ticket.taken_by else label(lang, "nobody_yet")
    rows = (
        (label(lang, "row_order"), ticket.order_number or label(lang, "no_order_row")),
        (label(lang, "row_contact"), ticket.contact or label(lang, "no_contact_row")),
        (label(lang, "row_channel"), channel),
        (label(lang, "row_taken"), taken),
    )
    shown = history_shown(desk, ticket, lang)
    if shown:  # the customer's history, in one row: the card's text says it in full
        line = desk.render(lang, "staff/card_history_row.txt", history=shown, ticket=ticket)
        rows = (*rows, (label(lang, "row_history"), line.strip()))
    how = desk.render(lang, "staff/card_how.txt", ticket=ticket)
    state = desk.render(lang, "staff/card_state.txt", ticket=ticket, taken=ticket.taken_by)
    return CardSummary(title.strip(), rows, how.strip(), state)


def post_card(uow: UnitOfWork, desk: Desk, ticket: Ticket) -> None:
    """The ticket reaches the staff room: its card, its photos, the full story when long. One
    row for each message staff will see, so that one that fails never sends the others again
    (and the card's id is kept the moment it is posted)."""
    assert ticket.id is not None
    uow.outbox.card(ticket.id, card(desk, ticket))
    photos = tuple(Attachment("photo", p, ticket.channel) for p in ticket.photos)
    for start in range(0, len(photos), ALBUM_MOST):  # as albums
        uow.outbox.to_thread(ticket.id, Say(attachments=photos[start : start + ALBUM_MOST]))
    story = "\n".join(ticket.story)
    if len(story) > CARD_STORY_LIMIT:  # the card holds only its start
        header = desk.render(desk.staff_language, "staff/story_full.html", ticket=ticket)
        for piece in texts(header, story):
            uow.outbox.to_thread(ticket.id, Say(piece))


def refresh_card(uow: UnitOfWork, desk: Desk, ticket: Ticket) -> None:
    """The card shows the ticket's new state (only once it is in the staff room)."""
    assert ticket.id is not None
    if ticket.status.value not in ("intake", "cancelled"):
        uow.outbox.card_edit(ticket.id, card(desk, ticket))


def tell_customer(
    uow: UnitOfWork,
    desk: Desk,
    ticket: Ticket,
    template: str,
    *,
    rows: Rows = (),
    urgency: Urgency = Urgency.RELAY,
    clear: bool = False,
    **context: Any,
) -> None:
    text = desk.render(ticket.language, template, ticket=ticket, policy=desk.policy, **context)
    uow.outbox.to_customer(
        ticket.customer,
        Say(text, rows, clear_choices=clear),
        ticket_id=ticket.id,
        urgency=urgency,
    )


def tell_thread(
    uow: UnitOfWork,
    desk: Desk,
    ticket: Ticket,
    template: str,
    *,
    rows: Rows = (),
    reply_to: str | None = None,
    urgency: Urgency = Urgency.CARD,
    alert: bool = False,
    to: Actor | None = None,
    **context: Any,
) -> None:
    """A word to staff in the ticket's thread. `alert`: an escalation (a second staff room,
    where there is one, gets a copy). `to`: meant for that one person only (a refusal)."""
    assert ticket.id is not None
    text = desk.render(desk.staff_language, template, ticket=ticket, policy=desk.policy, **context)
    uow.outbox.to_thread(
        ticket.id, Say(text, rows), reply_to=reply_to, urgency=urgency, alert=alert, to=to
    )


def ask_follow_up(uow: UnitOfWork, desk: Desk, ticket: Ticket, now: datetime) -> None:
    """The satisfaction question, 1 to 5, a tap away."""
    ticket.ask_follow_up(now)
    tell_customer(
        uow,
        desk,
        ticket,
        "customer/follow_up.html",
        rows=choices.rating(ticket.id or 0, ticket.language),
        urgency=Urgency.CARD,
    )


def texts(header: str, body: str, limit: int = TEXT_LIMIT) -> list[str]:
    """The header and the escaped body, in pieces Telegram accepts (each with the header)."""
    pieces = split_text(body, limit - len(header) - 2) if body else []
    return [f"{header}\n{escape(p)}" for p in pieces] or [header]


async def submit(
    uow: UnitOfWork, desk: Desk, ticket: Ticket, now: datetime, auto: bool = False
) -> None:
    """Send the ticket on to staff: severity suggested from the words, repeat complaints within
    30 days flagged, the card queued."""
    assert ticket.id is not None
    policy = desk.policy
    suggestion = suggest_severity(ticket.story, policy.ladder)
    tier = suggestion.tier_key if suggestion else None
    words = list(suggestion.words) if suggestion else []
    if ticket.priority == "critical":
        tier = policy.ladder.tiers[-1].key
    if auto:
        ticket.auto_submit(now, tier, words)
    else:
        ticket.submit(now, tier, words)
    earlier = await uow.tickets.recent_for_customer(
        ticket.customer, now - REPEAT_WINDOW, ticket.id
    )
    ticket.repeat_of = earlier.id if earlier else None
    raised = await look_back(uow, desk, ticket, now)
    await show_order(uow, desk, ticket, now)
    await uow.tickets.save(ticket)
    post_card(uow, desk, ticket)
    if raised:  # the managers hear of it, as of the other priority signals
        tell_thread(
            uow,
            desk,
            ticket,
            "staff/repeat_alert.html",
            managers=desk.managers(),
            count=ticket.history["in_window"] if ticket.history else 0,
            window=desk.policy.repeat_rule.window,
            urgency=Urgency.RELAY,
            alert=True,
        )
    await check_batches(uow, desk, ticket, now)


async def look_back(uow: UnitOfWork, desk: Desk, ticket: Ticket, now: datetime) -> bool:
    """The customer's history, kept on the ticket for its card: the same person by their
    messenger id, and on the other messenger by the phone number they gave. A repeat complaint
    (the policy's `repeat` rule) raises the severity one step: True then."""
    assert ticket.id is not None
    phone = phone_of(ticket.contact)
    earlier = await uow.tickets.of_customer(
        ticket.customer, phone, now - HISTORY_WINDOW, ticket.id
    )
    rule = desk.policy.repeat_rule
    ticket.history = summarise(ticket, earlier, rule) if earlier else None
    if not ticket.history or int(str(ticket.history["in_window"])) < rule.count:
        return False
    if ticket.priority == "critical":
        return False  # already the most urgent: the managers were paged
    higher = raised_severity(ticket.severity, desk.policy.ladder)
    if higher is None:
        return False
    ticket.raised_from = ticket.severity or ""
    ticket.severity = higher
    return True


async def show_order(uow: UnitOfWork, desk: Desk, ticket: Ticket, now: datetime) -> None:
    """The order's facts from the shop's records, beside the complaint. An order the records do
    not hold is asked of the shop's endpoint once this unit of work is committed (the card goes
    out at once, and shows the order when it comes): nothing holds the database while the
    shop's system answers."""
    if not ticket.order_number:
        return
    order = await uow.orders.get(ticket.order_number)
    if order is not None:
        ticket.show_order(order.facts())
        return
    lookup = desk.order_lookup
    if lookup is None:
        return
    assert ticket.id is not None
    ticket_id, number = ticket.id, ticket.order_number

    async def ask(new_uow: NewUnitOfWork) -> None:
        found = await lookup(number)  # outside any transaction
        if found is None:
            return
        async with new_uow() as later:
            await order_arrived(later, desk, ticket_id, found, now)
            await later.commit()

    uow.after_commit(ask)


async def order_arrived(
    uow: UnitOfWork, desk: Desk, ticket_id: int, order: Order, now: datetime
) -> None:
    """The shop's endpoint told us an order: it is kept (not asked again), and the ticket's
    card shows it, unless the ticket has since been given another order number."""
    await uow.orders.put([order], now)
    ticket = await uow.tickets.get(ticket_id)
    if ticket is None or normalise_number(ticket.order_number or "") != normalise_number(
        order.order_number
    ):
        return
    ticket.show_order(order.facts())
    await uow.tickets.save(ticket)
    refresh_card(uow, desk, ticket)
    await check_batches(uow, desk, ticket, now)


async def check_batches(uow: UnitOfWork, desk: Desk, ticket: Ticket, now: datetime) -> None:
    """Several complaints about one product or one batch within the policy's window: the
    managers are alerted once per window, with the tickets."""
    rule = desk.policy.batch_rule
    for scope, value in (("product", ticket.product), ("batch", ticket.batch)):
        if not value:
            continue
        ids = await uow.insight.complaints_about(**{scope: value}, since=now - rule.window)
        if len(ids) < rule.threshold:
            continue  # the usual case: no notice to look up (nor lock)
        key = f"{scope}:{value}"
        last = await uow.notices.last("batch_alert", key)
        if not alert_due(len(ids), rule, last, now):
            continue
        await uow.notices.given("batch_alert", key, now, tickets=ids)
        references = [reference(i) for i in ids]
        text = desk.render(
            desk.staff_language,
            "staff/batch_alert.html",
            scope=scope,
            value=value,
            tickets=[(ref, desk.ticket_link(ref)) for ref in references],
            managers=desk.managers(),
            window=rule.window,
        )
        # about several tickets, so no one ticket's thread: a reply to it reaches no customer
        uow.outbox.to_room(Say(text), urgency=Urgency.RELAY, alert=True)


async def watch(uow: UnitOfWork, desk: Desk, ticket: Ticket, text: str, now: datetime) -> None:
    """Safety or public-threat words, at any step: the ticket turns critical and the managers
    are paged in the staff room at once, even before the intake is done."""
    words = find_signals(text, desk.policy.signal_words)
    if not words:
        return
    new = ticket.flag(words, now)
    if not new:
        return
    assert ticket.id is not None
    await uow.tickets.save(ticket)
    managers = desk.managers()
    lang = desk.staff_language
    if ticket.status.value == "intake":
        # no card yet: an alert of its own; replies to it reach the customer
        text = desk.render(
            lang, "staff/critical_early.html", ticket=ticket, managers=managers, words=new
        )
        uow.outbox.to_room(Say(text), ticket_id=ticket.id, urgency=Urgency.RELAY, alert=True)
        return
    tell_thread(
        uow,
        desk,
        ticket,
        "staff/critical.html",
        managers=managers,
        words=new,
        urgency=Urgency.RELAY,
        alert=True,
    )
    refresh_card(uow, desk, ticket)
