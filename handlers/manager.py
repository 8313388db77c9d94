"""The manager, in the staff room: picks a tier of the shop's ladder (the customer gets its
options), resolves without compensation, or reopens a resolved ticket."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.domain.insight import (
    BacklogRow,
    Figures,
    Period,
    PeriodError,
    RecordRow,
    Responsible,
    RootCause,
    Summary,
    TimelineEntry,
    overdue_first,
    parse_period,
)
from bot.domain.messages import Answer, Attachment, Choice, Say, Urgency
from bot.domain.orders import normalise_number
from bot.domain.remedies import UnknownRemedy
from bot.domain.tickets import Actor, CustomerRef, Ticket, TicketStateError, parse_reference
from bot.labels import CHANNELS, RECORD_HEADERS, STATUSES, TIMELINE, label
from bot.orders import OrdersFileError, read_orders
from bot.text import split_text
from handlers import choices, common
from handlers.choices import Key
from handlers.context import Desk
from storage.uow import NewUnitOfWork, UnitOfWork

logger = logging.getLogger(__name__)


async def card_tapped(
    uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, key: Key, now: datetime
) -> Answer:
    action = key.part(0)
    if action == "tier":
        return await tier_chosen(uow, desk, actor, ticket, key.part(2), now)
    if action == "close":
        return await resolved_without_remedy(uow, desk, actor, ticket, now)
    return await reopened(uow, desk, actor, ticket, now)


async def tier_chosen(
    uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, tier_key: str, now: datetime
) -> Answer:
    """Offer the customer the tier's options (or, for a critical one, the manager in person)."""
    lang = desk.staff_language
    try:
        tier = desk.policy.ladder.tier(tier_key)
        if tier.in_person:
            ticket.hand_to_manager(tier.key, actor, now)
        else:
            ticket.offer_remedy(tier.key, actor, now)
    except (TicketStateError, UnknownRemedy):
        return Answer(desk.render(lang, "common/stale_button.txt"), alert=True)
    assert ticket.id is not None
    await uow.tickets.save(ticket)
    if tier.in_person:
        common.tell_customer(uow, desk, ticket, "customer/remedy_in_person.html", manager=actor)
        common.tell_thread(
            uow,
            desk,
            ticket,
            "staff/in_person.html",
            rows=choices.done(ticket.id, lang),
            actor=actor,
            urgency=Urgency.RELAY,
        )
    else:
        common.tell_customer(
            uow,
            desk,
            ticket,
            "customer/remedy_offer.html",
            rows=choices.options(ticket.id, tier, ticket.language),
            tier=tier,
        )
        common.tell_thread(uow, desk, ticket, "staff/remedy_offered.html", actor=actor, tier=tier)
    common.refresh_card(uow, desk, ticket)
    return Answer(desk.render(lang, "manager/tier_sent.txt", tier=tier.label.in_(lang)))


async def resolved_without_remedy(
    uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, now: datetime
) -> Answer:
    """The manager resolves the ticket without compensation; the customer is told."""
    lang = desk.staff_language
    try:
        ticket.resolve(actor, now, "no compensation")
    except TicketStateError:
        return Answer(desk.render(lang, "common/stale_button.txt"), alert=True)
    await uow.tickets.save(ticket)
    common.tell_customer(uow, desk, ticket, "customer/resolved.html", option=None)
    common.tell_thread(uow, desk, ticket, "staff/resolved.html", actor=actor)
    common.refresh_card(uow, desk, ticket)
    return Answer(desk.render(lang, "staff/resolved_alert.txt", ticket=ticket))


async def reopened(
    uow: UnitOfWork, desk: Desk, actor: Actor, ticket: Ticket, now: datetime
) -> Answer:
    """The manager reopens a resolved ticket; the customer hears it is looked at again. Not
    while the customer has another open ticket."""
    lang = desk.staff_language
    try:
        other = await uow.tickets.active_for_customer(ticket.customer)
        if other is not None:
            raise TicketStateError("the customer has another open ticket")
        ticket.reopen(actor, now)
    except TicketStateError:
        return Answer(desk.render(lang, "manager/reopen_refused.txt"), alert=True)
    await uow.tickets.save(ticket)
    common.tell_customer(uow, desk, ticket, "customer/reopened.html")
    common.tell_thread(uow, desk, ticket, "staff/reopened.html", actor=actor)
    common.refresh_card(uow, desk, ticket)
    return Answer(desk.render(lang, "manager/reopened_alert.txt", ticket=ticket))


# -- the dashboard: a button that opens it ------------------------------------------------------

DASHBOARD_COMMAND = "/dashboard"


def dashboard_button(desk: Desk, language: str) -> Say:
    """The words and the button that open the dashboard (or, with no PUBLIC_URL, why there is
    none). The button is a page the messenger opens as the person who tapped it: sent only
    into that person's own chat with the desk."""
    if desk.dashboard_url is None:
        return Say(desk.render(language, "manager/dashboard_needs_url.html"))
    button = Choice(label(language, "open_dashboard"), desk.dashboard_url, "page")
    return Say(desk.render(language, "manager/dashboard.html"), choices=((button,),))


def dashboard_in_private(
    uow: UnitOfWork, desk: Desk, who: CustomerRef, actor: Actor, language: str
) -> None:
    """`/dashboard` in someone's private chat with the desk (or the start link that brings
    it): a manager gets the button; anyone else hears, politely, that it is the managers'.
    Nothing else starts (no complaint)."""
    if actor.role != "manager":
        text = desk.render(language, "manager/dashboard_not_yours.html")
        uow.outbox.to_customer(who, Say(text), urgency=Urgency.RELAY)
        return
    uow.outbox.to_customer(who, dashboard_button(desk, language), urgency=Urgency.RELAY)


def dashboard_in_room(
    uow: UnitOfWork,
    desk: Desk,
    actor: Actor,
    private: CustomerRef | None = None,
    language: str | None = None,
    start_link: str | None = None,
) -> None:
    """`/dashboard` in the staff room. In a room of 1:1 chats (`private` None: WeCom's app) the
    manager gets the button there. In a shared group the button goes to the manager's private
    chat (`private`, in their `language`), and the group hears that it went; where it cannot
    go (they never started a chat with the bot), the group gets `start_link`, which starts
    that chat and brings the button. Others hear, politely, that it is the managers'."""
    lang = desk.staff_language
    if actor.role != "manager":
        template = "manager/only_managers.html"
        _room(uow, desk, template, to=actor, actor=actor, command=DASHBOARD_COMMAND)
        return
    if desk.dashboard_url is None or private is None:
        uow.outbox.to_room(dashboard_button(desk, lang), urgency=Urgency.RELAY, to=actor)
        return
    sent = Say(desk.render(lang, "manager/dashboard_sent.html", actor=actor))
    start_button = (
        ((Choice(label(lang, "start_dashboard"), start_link, "link"),),) if start_link else ()
    )

    def start(blocked: bool) -> Say:
        """Where the button could not go: why (`blocked`: Telegram said they never started a
        chat with the bot, or blocked it; else it failed or may not have arrived), and the link
        that starts the chat."""
        text = desk.render(
            lang, "manager/dashboard_start.html", actor=actor, link=start_link, blocked=blocked
        )
        return Say(text, choices=start_button)

    uow.outbox.to_customer(
        private,
        dashboard_button(desk, language or lang),
        urgency=Urgency.RELAY,
        if_sent=sent,
        if_blocked=start(blocked=True),
        if_not_sent=start(blocked=False),
        tell=actor,
    )


# -- insight: the complaint record, statistics, exports, orders --------------------------------
#
# An insight command may read a year of complaints or write 200,000 orders: it must hold up
# nobody. Its adapter runs it outside the chats' lanes, and in two steps: first it reads and
# computes (a read-only unit of work, or for /orders the file parsed in a worker thread and its
# orders written in short transactions of their own); what that returns (a `Finish`) is then
# run in the update's own unit of work, a short transaction that keeps the files and queues the
# messages.


INSIGHT_COMMANDS = ("/stats", "/export", "/ticket", "/orders")
ORDERS_CHUNK = 2_000  # orders a transaction: other chats get the database between two chunks

Finish = Callable[[UnitOfWork], Awaitable[None]]


def _room(
    uow: UnitOfWork, desk: Desk, template: str, to: Actor | None = None, **context: object
) -> None:
    text = desk.render(desk.staff_language, template, policy=desk.policy, **context)
    for piece in split_text(text, common.TEXT_LIMIT):
        uow.outbox.to_room(Say(piece), urgency=Urgency.RELAY, to=to)


def _said(desk: Desk, template: str, to: Actor | None = None, **context: object) -> Finish:
    """An answer to the room, rendered now, queued by the update's unit of work; `to`: the
    one who asked (a room of 1:1 chats sends it to them only)."""
    text = desk.render(desk.staff_language, template, policy=desk.policy, **context)
    pieces = split_text(text, common.TEXT_LIMIT)

    async def finish(uow: UnitOfWork) -> None:
        for piece in pieces:
            uow.outbox.to_room(Say(piece), urgency=Urgency.RELAY, to=to)

    return finish


def refused(desk: Desk, actor: Actor, command: str) -> Finish:
    """The insight commands are the managers'; others hear so, politely."""
    return _said(desk, "manager/only_managers.html", to=actor, actor=actor, command=command)


def _period(desk: Desk, args: str, now: datetime) -> Period | None:
    try:
        return parse_period(args, now, desk.policy.timezone)
    except PeriodError:
        return None


def _period_usage(desk: Desk, actor: Actor, command: str, args: str) -> Finish:
    return _said(desk, "manager/period_usage.html", to=actor, command=command, given=args.strip())


def _labels(desk: Desk, language: str | None = None) -> dict[str, dict[str, str]]:
    """Stored keys as the staff room reads them (or as one reads them in `language`)."""
    lang = language or desk.staff_language
    ladder = desk.policy.ladder
    return {
        "category": {c.key: c.label.in_(lang) for c in desk.policy.intake.categories},
        "severity": {t.key: t.label.in_(lang) for t in ladder.tiers},
        "channel": {"telegram": "Telegram", **CHANNELS.get(lang, {})},
        "result": STATUSES.get(lang, STATUSES["en"]),
        "root_cause": {c.value: label(lang, f"cause_{c.value}") for c in RootCause},
        "responsible": {r.value: label(lang, f"where_{r.value}") for r in Responsible},
        "timeline": TIMELINE.get(lang, TIMELINE["en"]),
    }


def _show(desk: Desk, language: str | None = None) -> Callable[[str, str], str]:
    labels = _labels(desk, language)
    lang = language or desk.staff_language

    def show(column: str, value: str) -> str:
        if column == "remedy" and value:
            tier_key, _, option = value.partition(":")
            try:
                tier = desk.policy.ladder.tier(tier_key)
            except UnknownRemedy:
                return value
            shown = tier.label.in_(lang)
            if option.isdigit() and int(option) < len(tier.options):
                shown += " → " + tier.options[int(option)].label.in_(lang)
            return shown
        return labels.get(column, {}).get(value, value)

    return show


def labels_of(desk: Desk, language: str | None = None) -> Callable[[str, str], str]:
    """A stored key (category, severity, channel, result, timeline, ...) as the staff room
    reads it, or as one reads it in `language` (zh | en)."""
    return _show(desk, language)


async def backlog(reading: UnitOfWork, now: datetime) -> list[BacklogRow]:
    """The tickets with staff, overdue first: the backlog the summary counts, one by one."""
    return overdue_first(await reading.insight.backlog(now), now)


async def summary_of(uow: UnitOfWork, desk: Desk, period: Period, now: datetime) -> Summary:
    return await uow.insight.summary(period, desk.sla.first_response, now)


async def figures(reading: UnitOfWork, desk: Desk, period_text: str, now: datetime) -> Figures:
    """The dashboard's figures of a period (`7d`, `30d`, `2026-11`; "" is 7 days): the summary
    `/stats` shows, with the weeks, stores, scores, batches and root causes beside it.
    PeriodError for a period the desk does not understand."""
    period = parse_period(period_text, now, desk.policy.timezone)
    return await reading.insight.figures(period, desk.sla.first_response, now)


async def ticket_timeline(
    reading: UnitOfWork, reference: str
) -> tuple[Ticket, list[TimelineEntry]] | None:
    """A ticket (T-000123) and its whole record, its events and messages in time order, as
    `/ticket` shows it; None for no such ticket."""
    ticket_id = parse_reference(reference)
    ticket = await reading.tickets.get(ticket_id) if ticket_id else None
    if ticket is None or ticket.id is None:
        return None
    return ticket, await reading.insight.timeline(ticket.id)


async def chart_png(desk: Desk, summary: Summary) -> tuple[str, bytes]:
    """The summary's chart: its file name and PNG (drawn in a worker thread)."""
    from bot.reports.chart import ChartLabels, chart_png  # matplotlib: only when asked

    render, lang = desk.render, desk.staff_language
    labels = ChartLabels(
        title=render(lang, "manager/chart_title.txt", summary=summary, policy=desk.policy),
        y_count=render(lang, "manager/chart_count.txt"),
        y_sla=render(lang, "manager/chart_sla.txt"),
        sla_line=render(lang, "manager/chart_sla_line.txt", sla=desk.sla.first_response),
        categories=_labels(desk)["category"],
        no_data=render(lang, "manager/chart_no_data.txt"),
    )
    png = await asyncio.to_thread(chart_png, summary, labels)
    return f"complaints-{summary.period.label}.png", png


async def _kept(uow: UnitOfWork, kind: str, name: str, data: bytes, now: datetime) -> Attachment:
    """A file the desk made, kept for the sender."""
    file_id = await uow.files.add(name, data, now)
    return Attachment(kind, str(file_id), "desk", name)


async def chart_file(uow: UnitOfWork, desk: Desk, summary: Summary, now: datetime) -> Attachment:
    """The summary's chart as a PNG, kept for the sender."""
    name, png = await chart_png(desk, summary)
    return await _kept(uow, "photo", name, png, now)


def _summary_text(desk: Desk, summary: Summary, template: str, **context: object) -> str:
    labels = _labels(desk)
    return desk.render(
        desk.staff_language,
        template,
        summary=summary,
        categories=[(labels["category"].get(k, k), n) for k, n in summary.by_category],
        severities=[
            (labels["severity"].get(k, k) if k else "", n) for k, n in summary.by_severity
        ],
        channels=[(labels["channel"].get(k, k), n) for k, n in summary.channels],
        sla=desk.sla.first_response,
        policy=desk.policy,
        **context,
    )


async def stats(reading: UnitOfWork, desk: Desk, actor: Actor, args: str, now: datetime) -> Finish:
    """`/stats [7d|30d|2026-11]`: the period's figures in a few lines, and the chart."""
    period = _period(desk, args, now)
    if period is None:
        return _period_usage(desk, actor, "/stats", args)
    summary = await summary_of(reading, desk, period, now)
    name, png = await chart_png(desk, summary)
    text = _summary_text(desk, summary, "manager/stats.html")

    async def finish(uow: UnitOfWork) -> None:
        chart = await _kept(uow, "photo", name, png, now)
        uow.outbox.to_room(Say(text), urgency=Urgency.RELAY, to=actor)
        uow.outbox.to_room(Say(attachments=(chart,)), urgency=Urgency.REPORT, to=actor)

    return finish


async def export(
    reading: UnitOfWork, desk: Desk, actor: Actor, args: str, now: datetime
) -> Finish:
    """`/export [period]`: the complaint record as an Excel workbook and as CSV."""
    from bot.reports.workbook import write_csv, write_xlsx  # only when asked

    period = _period(desk, args, now)
    if period is None:
        return _period_usage(desk, actor, "/export", args)
    lang = desk.staff_language
    headers = RECORD_HEADERS.get(lang, RECORD_HEADERS["en"])
    show = _show(desk)
    zone = desk.policy.timezone
    mask = desk.policy.mask_phones
    title = desk.render(lang, "manager/export_sheet.txt", period=period)
    loop = asyncio.get_running_loop()
    xlsx = await asyncio.to_thread(
        write_xlsx, _rows(reading.insight.record(period, mask), loop), headers, show, zone, title
    )
    csv = await asyncio.to_thread(
        write_csv, _rows(reading.insight.record(period, mask), loop), headers, show, zone
    )
    stem = desk.render(lang, "manager/export_name.txt", period=period)
    text = desk.render(lang, "manager/export.html", period=period, mask=mask)

    async def finish(uow: UnitOfWork) -> None:
        files = [
            await _kept(uow, "document", f"{stem}.{suffix}", data, now)
            for data, suffix in ((xlsx, "xlsx"), (csv, "csv"))
        ]
        uow.outbox.to_room(Say(text), urgency=Urgency.RELAY, to=actor)
        for attachment in files:
            uow.outbox.to_room(Say(attachments=(attachment,)), urgency=Urgency.REPORT, to=actor)

    return finish


def _rows(
    records: AsyncGenerator[RecordRow, None], loop: asyncio.AbstractEventLoop
) -> Iterator[RecordRow]:
    """The database's rows for a writer in a worker thread: read on the event loop a page at a
    time, so that neither the loop waits for the writer nor all rows are held at once."""

    async def page() -> list[RecordRow]:
        rows: list[RecordRow] = []
        async for row in records:
            rows.append(row)
            if len(rows) == 500:
                break
        return rows

    try:
        while rows := asyncio.run_coroutine_threadsafe(page(), loop).result():
            yield from rows
    finally:  # a writer that stops early (or fails) leaves no cursor open
        asyncio.run_coroutine_threadsafe(records.aclose(), loop).result()


async def ticket_record(reading: UnitOfWork, desk: Desk, actor: Actor, args: str) -> Finish:
    """`/ticket T-000123`: the ticket's whole record, as a timeline."""
    found = await ticket_timeline(reading, args.split()[0]) if args.split() else None
    if found is None:
        return _said(desk, "manager/ticket_usage.html", to=actor, given=args.strip())
    ticket, entries = found
    labels = _labels(desk)
    return _said(
        desk,
        "manager/timeline.html",
        to=actor,
        ticket=ticket,
        entries=entries,
        category=labels["category"].get(ticket.category or "", ticket.category or "—"),
        status=labels["result"].get(ticket.status.value, ticket.status.value),
        what=labels["timeline"],
    )


async def orders_received(
    new_uow: NewUnitOfWork,
    desk: Desk,
    actor: Actor,
    name: str,
    data: bytes | None,
    now: datetime,
) -> Finish:
    """`/orders` with a CSV or XLSX file: the shop's orders, so that cards show what was
    ordered; open tickets with those order numbers show it at once.

    The file (up to 200,000 rows) is read in a worker thread, and its orders are written
    `ORDERS_CHUNK` at a time, each chunk in a transaction of its own, so that other chats write
    between two chunks. An import is an upsert: if the desk stops halfway, the update is
    handled again at the next start and writes the same orders again, none lost or doubled.
    What returns (the cards refreshed, the manager told) runs in the update's own unit of
    work, once every order is in."""
    if data is None:
        return _said(desk, "manager/orders_usage.html", to=actor)
    began = time.monotonic()
    try:
        parsed = await asyncio.to_thread(read_orders, name, data, desk.policy.orders.columns)
    except OrdersFileError as exc:
        return _said(desk, "manager/orders_refused.html", to=actor, reason=str(exc), name=name)
    read = time.monotonic()
    for start in range(0, len(parsed.orders), ORDERS_CHUNK):
        async with new_uow() as uow:
            await uow.orders.put(parsed.orders[start : start + ORDERS_CHUNK], now)
            await uow.commit()
    logger.info(
        "Orders file %r: %s orders read in %.1f s, written in %.1f s",
        name,
        len(parsed.orders),
        read - began,
        time.monotonic() - read,
    )
    by_number = {o.order_number: o for o in parsed.orders}

    async def finish(uow: UnitOfWork) -> None:
        shown = 0
        for ticket in await uow.tickets.with_orders(list(by_number)):
            order = by_number.get(normalise_number(ticket.order_number or ""))
            if order is None:
                continue
            ticket.show_order(order.facts())
            await uow.tickets.save(ticket)
            common.refresh_card(uow, desk, ticket)
            await common.check_batches(uow, desk, ticket, now)
            shown += 1
        _room(
            uow,
            desk,
            "manager/orders_imported.html",
            to=actor,
            count=len(parsed.orders),
            skipped=parsed.skipped,
            columns=parsed.columns,
            shown=shown,
            name=name,
        )

    return finish


async def weekly_report(uow: UnitOfWork, desk: Desk, now: datetime) -> bool:
    """The week's report for the managers (once a week: a restart does not send it again):
    the figures, the chart, and the three things to fix first. A week with nothing in it is
    noted, not reported."""
    week = now.astimezone(ZoneInfo(desk.policy.timezone)).strftime("%G-W%V")
    if await uow.notices.last("weekly_report", week) is not None:
        return False
    await uow.notices.given("weekly_report", week, now)
    period = parse_period("7d", now, desk.policy.timezone)
    summary = await summary_of(uow, desk, period, now)
    if summary.total == 0 and summary.backlog == 0:
        return True  # nothing to report (a new desk): not a message worth a manager's time
    chart = await chart_file(uow, desk, summary, now)
    labels = _labels(desk)
    text = _summary_text(
        desk,
        summary,
        "manager/weekly.html",
        managers=desk.managers(),
        fixes=things_to_fix(summary, desk.sla.first_response, labels),
    )
    uow.outbox.to_room(Say(text), urgency=Urgency.REPORT)
    uow.outbox.to_room(Say(attachments=(chart,)), urgency=Urgency.REPORT)
    return True


def things_to_fix(
    summary: Summary, sla: timedelta, labels: dict[str, dict[str, str]]
) -> list[tuple[str, dict[str, object]]]:
    """The three things to fix first, worst first: (what, its figures) for the template."""
    found: list[tuple[float, str, dict[str, object]]] = []
    total = summary.total or 1
    if summary.top_products:
        product, count = summary.top_products[0]
        if count >= 2:
            found.append((count / total + 0.2, "product", {"product": product, "count": count}))
    if summary.by_category:
        key, count = summary.by_category[0]
        name = labels["category"].get(key, key)
        found.append((count / total, "category", {"category": name, "count": count}))
    if summary.first_answer_in_sla is not None and summary.first_answer_in_sla < 0.9:
        share = summary.first_answer_in_sla
        found.append((1 - share, "first_answer", {"share": share, "sla": sla}))
    if summary.satisfaction_average is not None and summary.satisfaction_average < 4:
        found.append(
            (
                (4 - summary.satisfaction_average) / 4,
                "satisfaction",
                {"average": summary.satisfaction_average},
            )
        )
    if summary.backlog:
        found.append((min(summary.backlog / total, 0.5), "backlog", {"count": summary.backlog}))
    found.sort(key=lambda item: item[0], reverse=True)
    return [(what, figures) for _, what, figures in found[:3]]
