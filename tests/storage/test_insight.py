"""The manager's insight on real databases: a period's figures with known answers, the
complaint record, the complaints about one product or batch, and a ticket's whole record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.insight import Period, TimelineEntry, overdue_first, percentile
from storage.db import create_engine, session_factory
from storage.models import DeadlineRow, EventRow, MessageRow, OrderRow, TicketRow
from storage.uow import UnitOfWork
from tests.conftest import Templates

SLA = timedelta(minutes=10)
# the shop's days 2026-11-06 .. 2026-11-12 (Asia/Shanghai, UTC+8)
PERIOD = Period(
    datetime(2026, 11, 5, 16, 0, tzinfo=UTC), datetime(2026, 11, 12, 16, 0, tzinfo=UTC), "7d"
)
NOW = datetime(2026, 11, 12, 12, 0, tzinfo=UTC)
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture
async def factory(
    database_url: str, templates: Templates
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await templates.migrated(database_url)
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


def ticket(
    ticket_id: int,
    status: str,
    submitted: datetime | None,
    category: str | None = "quality",
    answer_after: timedelta | None = None,
    resolve_after: timedelta | None = None,
    **columns: Any,
) -> TicketRow:
    """A ticket row as the desk leaves it, with exactly the times given."""
    created = (submitted or at(8, 0)) - 5 * MINUTE
    started = columns.pop("clock_started_at", submitted)
    return TicketRow(
        id=ticket_id,
        channel=columns.pop("channel", "telegram"),
        customer_id=str(1000 + ticket_id),
        customer_name=f"客户{ticket_id}",
        language="zh",
        status=status,
        category=category,
        created_at=created,
        submitted_at=submitted,
        clock_started_at=started,
        first_response_at=started + answer_after if started and answer_after else None,
        first_response_by_id="5" if answer_after else None,
        first_response_by_name="小王" if answer_after else None,
        resolved_at=submitted + resolve_after if submitted and resolve_after else None,
        **columns,
    )


A, B, C, D, E, F = 1, 2, 3, 4, 5, 6  # in the period, in the order submitted
OUTSIDE_BEFORE, IN_INTAKE, CANCELLED, AT_THE_END = 7, 8, 9, 10


def tickets() -> list[TicketRow]:
    """Fresh rows each time (a row object belongs to the one session that stored it)."""
    return [
        ticket(A, "closed", at(6, 2), answer_after=2 * MINUTE, resolve_after=2 * HOUR,
               severity="medium", satisfaction=5, product="红玫瑰花束", story=["蔫了", "很失望"],
               photos=["p1", "p2"], tier="minor", chosen_option=0, taken_by_name="小王"),
        ticket(B, "closed", at(7, 3), answer_after=4 * MINUTE, resolve_after=4 * HOUR,
               severity="minor", tier="medium", satisfaction=4, product="红玫瑰花束"),
        # rated 1: reopened, the clock restarted, answered again 20 minutes after that
        ticket(C, "open", at(8, 5), "late", answer_after=20 * MINUTE, satisfaction=1,
               clock_started_at=at(8, 9), channel="wecom"),
        # 17:30 UTC is 01:30 on the 11th in Shanghai
        ticket(D, "remedy_chosen", at(10, 17, 30), "wrong_item", answer_after=40 * MINUTE,
               severity="medium", tier="minor", chosen_option=1, product="向日葵花束",
               batch="B1110", order_number="FS2026111001", contact="手机 13812345678",
               channel="wecom", taken_by_name="小李"),
        ticket(E, "resolved", at(11, 8), answer_after=6 * MINUTE, resolve_after=6 * HOUR,
               severity="minor", order_number="FS2026111102"),
        ticket(F, "open", at(12, 1), "packaging", severity="medium", product="红玫瑰花束"),
        ticket(OUTSIDE_BEFORE, "open", at(1, 2), answer_after=MINUTE, product="红玫瑰花束"),
        ticket(IN_INTAKE, "intake", None, product="红玫瑰花束"),
        ticket(CANCELLED, "cancelled", None),
        ticket(AT_THE_END, "closed", PERIOD.end, answer_after=MINUTE, resolve_after=HOUR,
               satisfaction=2, product="红玫瑰花束"),
    ]  # fmt: skip


def orders() -> list[OrderRow]:
    return [
        OrderRow(order_number="FS2026111001", product="百合花篮", batch="B0000", store="静安店",
                 region="上海", imported_at=at(1, 0)),
        OrderRow(order_number="FS2026111102", product="百合花篮", batch="B1103", store="徐汇店",
                 region="上海", imported_at=at(1, 0)),
    ]  # fmt: skip


@pytest.fixture
async def seeded(
    factory: async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession]:
    async with UnitOfWork(factory) as uow:
        uow.session.add_all(orders())
        uow.session.add_all(tickets())
        await uow.commit()
    return factory


async def test_the_summary_has_the_known_figures(
    seeded: async_sessionmaker[AsyncSession],
) -> None:
    """Counts, first-answer median and p90 (as percentile()), the SLA share, resolution,
    satisfaction and the backlog come out of SQL as computed by hand; the intake's, the
    cancelled and the tickets outside the period are not counted."""
    async with UnitOfWork(seeded) as uow:
        summary = await uow.insight.summary(PERIOD, SLA, NOW)
    answers = [2 * 60, 4 * 60, 6 * 60, 20 * 60, 40 * 60]
    assert summary.total == 6
    assert summary.by_category == [
        ("quality", 3),
        ("late", 1),
        ("packaging", 1),
        ("wrong_item", 1),
    ]
    assert summary.by_severity == [("minor", 3), ("medium", 2), ("", 1)]  # tier, else severity
    assert summary.channels == [("telegram", 4), ("wecom", 2)]
    assert summary.backlog == 4  # C, D, F and the one before the period
    assert summary.answered == 5
    assert summary.first_answer_median == pytest.approx(6 * 60)
    assert summary.first_answer_p90 == pytest.approx(32 * 60)
    assert summary.first_answer_p90 == pytest.approx(percentile(answers, 90))
    assert summary.first_answer_in_sla == pytest.approx(0.6)
    assert summary.resolved == 3
    assert summary.resolution_median == pytest.approx(4 * 3600)
    assert summary.satisfaction_average == pytest.approx(10 / 3)
    assert summary.satisfaction_answers == 3
    assert summary.top_products == [("红玫瑰花束", 3), ("向日葵花束", 1)]


async def test_the_backlog_lists_what_the_summary_counts_overdue_first(
    seeded: async_sessionmaker[AsyncSession],
) -> None:
    """The backlog is the summary's tickets with staff, each with its next promise still to
    keep (a met or no longer planned one, or another round's, does not count); the overdue
    come first, a ticket with no deadline last."""

    def deadline(ticket_id: int, kind: str, due: datetime, fired: bool, of_round: int = 0) -> Any:
        return DeadlineRow(
            ticket_id=ticket_id,
            kind=kind,
            round=of_round,
            due_at=due,
            fired_at=due if fired else None,
        )

    async with UnitOfWork(seeded) as uow:
        uow.session.add_all(
            [
                deadline(C, "first_response", at(8, 9, 10), fired=True),  # answered since
                deadline(C, "progress", at(8, 11), fired=True),  # missed: overdue
                deadline(C, "resolution", at(9, 9), fired=True),
                deadline(D, "progress", at(10, 19), fired=True),  # remedy chosen: not planned
                deadline(D, "resolution", at(10, 10), fired=False, of_round=1),  # another round
                deadline(D, "resolution", at(13, 0), fired=False),
                deadline(F, "first_response", at(12, 1, 10), fired=True),  # unanswered
                deadline(F, "resolution", at(13, 1), fired=False),
            ]
        )
        await uow.commit()
    async with UnitOfWork(seeded, read_only=True) as uow:
        summary = await uow.insight.summary(PERIOD, SLA, NOW)
        rows = overdue_first(await uow.insight.backlog(NOW), NOW)
    assert len(rows) == summary.backlog
    assert [(r.reference, r.next_kind, r.next_due, r.overdue(NOW)) for r in rows] == [
        ("T-000003", "progress", at(8, 11), True),
        ("T-000006", "first_response", at(12, 1, 10), True),
        ("T-000004", "resolution", at(13, 0), False),
        ("T-000007", "", None, False),
    ]
    d = rows[2]
    assert (d.category, d.severity, d.taken_by) == ("wrong_item", "minor", "小李")
    assert d.age_hours(NOW) == pytest.approx(42.5)


async def test_the_days_are_the_shops_days_zero_filled(
    seeded: async_sessionmaker[AsyncSession],
) -> None:
    """Every day of the period is there, counted by the shop's calendar (17:30 UTC on the 10th
    is the 11th in Shanghai), with the day's answered and answered-in-time tickets, whatever
    the database session's own time zone."""
    async with UnitOfWork(seeded) as uow:  # 00:10 on the 12th in Shanghai
        uow.session.add(ticket(11, "open", at(11, 16, 10), "packaging"))
        await uow.commit()
    async with UnitOfWork(seeded) as uow:
        if uow.session.get_bind().dialect.name == "postgresql":  # date_trunc would follow it
            await uow.session.execute(text("SET TIME ZONE 'America/St_Johns'"))  # UTC-3:30
        summary = await uow.insight.summary(PERIOD, SLA, NOW)
    days = {d.day: d for d in summary.days}
    assert list(days) == [date(2026, 11, n) for n in range(6, 13)]
    assert [d.total for d in summary.days] == [1, 1, 1, 0, 0, 2, 2]
    assert days[date(2026, 11, 11)].by_category == {
        "quality": 1,
        "late": 0,
        "packaging": 0,
        "wrong_item": 1,
    }
    assert days[date(2026, 11, 9)].by_category == dict.fromkeys(
        ["quality", "late", "packaging", "wrong_item"], 0
    )
    eleventh = days[date(2026, 11, 11)]
    assert (eleventh.answered, eleventh.answered_in_time, eleventh.sla_hit) == (2, 1, 0.5)
    assert days[date(2026, 11, 12)].sla_hit is None


async def test_an_empty_period_has_no_figures_but_all_its_days(
    seeded: async_sessionmaker[AsyncSession],
) -> None:
    """Nothing submitted: zeros and Nones, not errors; the days are still there."""
    empty = Period(at(20, 16), at(22, 16), "2d")
    async with UnitOfWork(seeded) as uow:
        summary = await uow.insight.summary(empty, SLA, NOW)
    assert (summary.total, summary.answered, summary.resolved) == (0, 0, 0)
    assert summary.first_answer_median is None and summary.first_answer_p90 is None
    assert summary.first_answer_in_sla is None and summary.satisfaction_average is None
    assert summary.by_category == [] and summary.top_products == []
    assert [(d.day, d.total) for d in summary.days] == [
        (date(2026, 11, 21), 0),
        (date(2026, 11, 22), 0),
    ]
    assert summary.backlog == 4


async def test_the_record_streams_the_period_in_order_with_the_orders_facts(
    seeded: async_sessionmaker[AsyncSession],
) -> None:
    """One row per submitted ticket in the order submitted; phones masked; the order's store
    and region joined, its product and batch where the ticket has none."""
    async with UnitOfWork(seeded) as uow:
        rows = [row async for row in uow.insight.record(PERIOD)]
        plain = [row async for row in uow.insight.record(PERIOD, mask=False)]
    assert [r.reference for r in rows] == [f"T-00000{n}" for n in (A, B, C, D, E, F)]
    a, _, c, d, e, f = rows
    assert d.contact == "手机 138****5678" and plain[3].contact == "手机 13812345678"
    assert (d.product, d.batch, d.store, d.region) == ("向日葵花束", "B1110", "静安店", "上海")
    assert (e.product, e.batch, e.store, e.order_number) == (
        "百合花篮",
        "B1103",
        "徐汇店",
        "FS2026111102",
    )
    assert (f.product, f.store, f.contact, f.first_answer_minutes) == ("红玫瑰花束", "", "", None)
    assert d.submitted_at == at(10, 17, 30) and d.first_answer_at == at(10, 18, 10)
    assert c.first_answer_minutes == pytest.approx(20.0)  # from the reopening
    assert (a.story, a.photos, a.category, a.severity) == ("蔫了\n很失望", 2, "quality", "minor")
    assert (d.remedy, d.result, d.severity) == ("minor:1", "remedy_chosen", "minor")
    assert a.result == "closed: rated" and a.satisfaction == 5
    assert a.actions == "taken by 小王; answered by 小王; remedy minor:0; resolved; closed"
    assert f.actions == "" and f.remedy == "" and e.remedy == ""


async def test_complaints_about_a_product_or_a_batch_since_then(
    seeded: async_sessionmaker[AsyncSession],
) -> None:
    """Submitted tickets only, oldest first, from `since` on."""
    async with UnitOfWork(seeded) as uow:
        roses = await uow.insight.complaints_about(product="红玫瑰花束", since=at(7, 0))
        every_rose = await uow.insight.complaints_about(product="红玫瑰花束", since=at(1, 0))
        batch = await uow.insight.complaints_about(batch="B1110", since=at(1, 0))
        none = await uow.insight.complaints_about(product="郁金香", since=at(1, 0))
    assert roses == [B, F, AT_THE_END]
    assert every_rose == [OUTSIDE_BEFORE, A, B, F, AT_THE_END]
    assert batch == [D] and none == []


async def test_a_tickets_timeline_merges_its_events_and_messages_in_time_order(
    seeded: async_sessionmaker[AsyncSession],
) -> None:
    """Events and messages of the one ticket, by time; at the same moment the event first."""
    t0 = at(10, 17, 30)

    def event(kind: str, when: datetime, name: str, role: str, detail: str = "") -> EventRow:
        return EventRow(
            ticket_id=D, kind=kind, actor_id="1", actor_name=name, actor_role=role, at=when,
            detail=detail,
        )  # fmt: skip

    def message(direction: str, when: datetime, name: str, text: str | None) -> MessageRow:
        return MessageRow(
            ticket_id=D, direction=direction, sender_id="1", sender_name=name,
            kind="text" if text else "photo", text=text, chat_id="c", at=when,
        )  # fmt: skip

    async with UnitOfWork(seeded) as uow:
        uow.session.add_all(
            [
                message("out", t0 + 40 * MINUTE, "小李", "您好,马上处理"),
                event("answered", t0 + 40 * MINUTE, "小李", "staff"),
                event("submitted", t0, "客户4", "customer"),
                message("in", t0 - MINUTE, "客户4", "花送错了"),
                message("in", t0 - MINUTE / 2, "客户4", None),
                event("taken", t0 + 2 * MINUTE, "小李", "staff"),
                EventRow(  # another ticket's
                    ticket_id=E, kind="submitted", actor_id="9", actor_name="别人",
                    actor_role="customer", at=t0,
                ),
            ]
        )  # fmt: skip
        await uow.commit()
    async with UnitOfWork(seeded) as uow:
        timeline = await uow.insight.timeline(D)
    assert timeline == [
        TimelineEntry(t0 - MINUTE, "message", "text", "客户4", "customer", "花送错了", "in"),
        TimelineEntry(t0 - MINUTE / 2, "message", "photo", "客户4", "customer", "", "in"),
        TimelineEntry(t0, "event", "submitted", "客户4", "customer", ""),
        TimelineEntry(t0 + 2 * MINUTE, "event", "taken", "小李", "staff", ""),
        TimelineEntry(t0 + 40 * MINUTE, "event", "answered", "小李", "staff", ""),
        TimelineEntry(
            t0 + 40 * MINUTE, "message", "text", "小李", "staff", "您好,马上处理", "out"
        ),
    ]


async def test_the_dashboards_figures_add_weeks_stores_scores_batches_and_causes(
    seeded: async_sessionmaker[AsyncSession],
) -> None:
    """Beside the summary (the same one `/stats` gets), the figures count the period week by
    week (Mondays in the shop's calendar: 01:30 on the 11th in Shanghai is in the week of the
    9th), by the store of each ticket's order, by satisfaction score, by batch and by the root
    cause staff recorded."""
    async with UnitOfWork(seeded) as uow:
        await uow.session.execute(
            update(TicketRow).where(TicketRow.id.in_([A, B])).values(root_cause="product_defect")
        )
        await uow.session.execute(
            update(TicketRow).where(TicketRow.id == E).values(root_cause="process_gap")
        )
        await uow.session.execute(
            update(TicketRow).where(TicketRow.id == OUTSIDE_BEFORE).values(root_cause="x")
        )
        await uow.commit()
    async with UnitOfWork(seeded, read_only=True) as uow:
        summary = await uow.insight.summary(PERIOD, SLA, NOW)
        figures = await uow.insight.figures(PERIOD, SLA, NOW)
    assert figures.summary == summary
    weeks = figures.weeks
    assert [w.monday for w in weeks] == [date(2026, 11, 2), date(2026, 11, 9)]
    assert [w.by_category for w in weeks] == [
        {"quality": 2, "late": 1, "packaging": 0, "wrong_item": 0},
        {"quality": 1, "late": 0, "packaging": 1, "wrong_item": 1},
    ]
    assert [(w.answered, w.answered_in_time) for w in weeks] == [(3, 2), (2, 1)]
    assert [w.sla_hit for w in weeks] == [pytest.approx(2 / 3), 0.5]
    assert sorted(figures.by_store) == [("徐汇店", "quality", 1), ("静安店", "wrong_item", 1)]
    assert figures.stores() == (
        ["quality", "wrong_item"],
        [("徐汇店", [1, 0]), ("静安店", [0, 1])],
    )
    assert figures.satisfaction_scores == {1: 1, 2: 0, 3: 0, 4: 1, 5: 1}
    assert figures.top_batches == [("B1110", 1)]
    assert figures.root_causes == [("product_defect", 2), ("process_gap", 1)]


async def test_a_period_without_stores_or_scores_has_empty_figures(
    seeded: async_sessionmaker[AsyncSession],
) -> None:
    """No ticket in the period: no store grid, every score at 0, its weeks still there."""
    empty = Period(at(20, 16), at(22, 16), "2d")  # Saturday 21st and Sunday 22nd in Shanghai
    async with UnitOfWork(seeded, read_only=True) as uow:
        figures = await uow.insight.figures(empty, SLA, NOW)
    assert figures.stores() == ([], [])
    assert figures.satisfaction_scores == dict.fromkeys(range(1, 6), 0)
    assert figures.top_batches == [] and figures.root_causes == []
    assert [(w.monday, w.total, w.sla_hit) for w in figures.weeks] == [
        (date(2026, 11, 16), 0, None)
    ]
