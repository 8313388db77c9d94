"""The manager's insight, in SQL: a period's figures, the complaint record (streamed), the
complaints about one product or batch, and a ticket's whole record.

The figures are aggregates computed by the database over the period's tickets (found through
`ix_tickets_submitted`); no ticket of the period is loaded as an object. Only two things are
finished in Python, both small: the hour buckets of the chart become the shop's days (at most
24 x days x categories rows), and on SQLite, which has no percentile function, the percentiles
are taken from the period's durations (one column of numbers)."""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import AsyncGenerator, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Float, and_, case, cast, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.clock import DeadlineKind
from bot.domain.insight import (
    BacklogRow,
    DayCount,
    Figures,
    Period,
    RecordRow,
    Summary,
    TimelineEntry,
    mask_phone,
    percentile,
)
from bot.domain.tickets import WITH_STAFF, Status, reference
from storage.models import DeadlineRow, EventRow, MessageRow, OrderRow, TicketRow

TOP_PRODUCTS = 5  # and batches, on the dashboard
RECORD_BATCH = 1000  # rows fetched at a time while the record is streamed

# submitted: neither still in the intake nor cancelled in it
_NOT_SUBMITTED = (Status.INTAKE.value, Status.CANCELLED.value)


def _submitted() -> ColumnElement[bool]:
    return and_(TicketRow.submitted_at.is_not(None), TicketRow.status.not_in(_NOT_SUBMITTED))


def _in(period: Period) -> ColumnElement[bool]:
    return and_(
        TicketRow.submitted_at >= period.start,
        TicketRow.submitted_at < period.end,
        TicketRow.status.not_in(_NOT_SUBMITTED),
    )


def _with_staff(now: datetime) -> ColumnElement[bool]:
    """The backlog: the tickets with staff at `now`, whenever they were submitted."""
    return and_(
        TicketRow.status.in_([s.value for s in WITH_STAFF]),
        TicketRow.submitted_at < now,
    )


def _still_promised() -> ColumnElement[bool]:
    """A deadline of the ticket's current round that is still a promise to keep, as the domain
    plans them (`bot.domain.clock.plan`): the first answer until it is given, progress while
    the ticket is open, the resolution while it is with staff. One that fired stays: it was
    missed, and the ticket is overdue."""
    return and_(
        DeadlineRow.round == TicketRow.deadline_round,
        or_(
            and_(
                DeadlineRow.kind == DeadlineKind.FIRST_RESPONSE.value,
                TicketRow.first_response_at.is_(None),
            ),
            and_(
                DeadlineRow.kind == DeadlineKind.PROGRESS.value,
                TicketRow.status == Status.OPEN.value,
            ),
            DeadlineRow.kind == DeadlineKind.RESOLUTION.value,
        ),
    )


class InsightRepository:
    """Read-only: nothing here changes a row."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _postgres(self) -> bool:
        bind = self.session.bind
        return bind is not None and bind.dialect.name == "postgresql"

    def _seconds(self, later: Any, earlier: Any) -> ColumnElement[float]:
        """later - earlier in seconds. SQLite's julianday() keeps whole milliseconds (the
        microseconds are dropped); the difference of two such doubles is rounded back to
        milliseconds, so that 600 s is 600.0, not 599.99999, against the SLA."""
        if self._postgres:
            return cast(extract("epoch", later - earlier), Float)
        return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)

    def _first_answer(self) -> ColumnElement[float]:
        """Seconds from the clock's start (submitted, or reopened) to the first human answer;
        NULL while nobody has answered."""
        started = func.coalesce(TicketRow.clock_started_at, TicketRow.submitted_at)
        return self._seconds(TicketRow.first_response_at, started)

    def _resolution(self) -> ColumnElement[float]:
        """Seconds from submission to resolution (kept when the ticket is closed)."""
        return self._seconds(TicketRow.resolved_at, TicketRow.submitted_at)

    def _hour(self) -> ColumnElement[Any]:
        """The UTC hour a ticket was submitted in (PostgreSQL truncates in the session's zone
        unless told UTC)."""
        if self._postgres:
            return func.date_trunc("hour", func.timezone("UTC", TicketRow.submitted_at))
        return func.strftime("%Y-%m-%d %H", TicketRow.submitted_at)

    # -- the summary ---------------------------------------------------------------------------

    async def summary(
        self, period: Period, first_response_sla: timedelta, now: datetime
    ) -> Summary:
        """The figures of the tickets submitted in the period; the backlog is the tickets with
        staff at `now`, whenever they were submitted. An answer exactly at the SLA is in time."""
        first = self._first_answer()
        resolution = self._resolution()
        in_time = case((first <= first_response_sla.total_seconds(), 1))
        # grouped expressions are grouped by their labels: PostgreSQL would not take
        # coalesce(x, $1) in the select list and coalesce(x, $2) in GROUP BY as the same; the
        # labels are no column's name (GROUP BY would take the column)
        category = func.coalesce(TicketRow.category, "").label("category_key")
        severity = func.coalesce(TicketRow.tier, TicketRow.severity, "").label("severity_key")

        totals: list[Any] = [
            func.count(),
            func.count(TicketRow.first_response_at),
            func.count(in_time),
            func.count(TicketRow.resolved_at),
            func.avg(TicketRow.satisfaction),
            func.count(TicketRow.satisfaction),
        ]
        if self._postgres:
            totals += [
                func.percentile_cont(0.5).within_group(first),
                func.percentile_cont(0.9).within_group(first),
                func.percentile_cont(0.5).within_group(resolution),
            ]
        row = (await self.session.execute(select(*totals).where(_in(period)))).one()
        total, answered, answered_in_time, resolved, satisfaction, rated = row[:6]
        if self._postgres:
            median, p90, resolution_median = row[6:9]
        else:
            median, p90, resolution_median = await self._sqlite_percentiles(period)

        breakdown = await self.session.execute(
            select(severity, TicketRow.channel, func.count())
            .where(_in(period))
            .group_by("severity_key", TicketRow.channel)
        )
        by_severity: dict[str, int] = defaultdict(int)
        channels: dict[str, int] = defaultdict(int)
        for tier, channel, count in breakdown:
            by_severity[tier] += count
            channels[channel] += count

        hour = self._hour().label("utc_hour")
        hours = await self.session.execute(
            select(
                hour,
                category,
                func.count(),
                func.count(TicketRow.first_response_at),
                func.count(in_time),
            )
            .where(_in(period))
            .group_by("utc_hour", "category_key")
        )
        by_category, days = _days(period, hours)

        products = await self._most(TicketRow.product, period, TOP_PRODUCTS)
        backlog = await self.session.scalar(select(func.count()).where(_with_staff(now)))

        return Summary(
            period=period,
            total=total,
            by_category=_most_first(by_category),
            by_severity=_most_first(by_severity),
            backlog=backlog or 0,
            first_answer_median=_number(median),
            first_answer_p90=_number(p90),
            first_answer_in_sla=answered_in_time / answered if answered else None,
            answered=answered,
            resolution_median=_number(resolution_median),
            resolved=resolved,
            satisfaction_average=_number(satisfaction),
            satisfaction_answers=rated,
            top_products=products,
            days=days,
            channels=_most_first(channels),
        )

    async def _most(
        self, column: Any, period: Period, limit: int | None = None
    ) -> list[tuple[str, int]]:
        """The period's tickets counted by a column (product, batch, root cause; where it is
        set), most first, then by name; the first `limit` (None: all)."""
        query = (
            select(column, func.count())
            .where(_in(period), column.is_not(None), column != "")
            .group_by(column)
            .order_by(func.count().desc(), column)
        )
        if limit is not None:
            query = query.limit(limit)
        return [(value, count) for value, count in await self.session.execute(query)]

    # -- the dashboard -------------------------------------------------------------------------

    async def figures(
        self, period: Period, first_response_sla: timedelta, now: datetime
    ) -> Figures:
        """The dashboard's figures: the summary (the same queries as `/stats`), and the
        complaints by store and category (the store of the ticket's order), the satisfaction
        scores, the most complained batches and the root causes staff recorded."""
        summary = await self.summary(period, first_response_sla, now)
        category = func.coalesce(TicketRow.category, "").label("category_key")
        stores = await self.session.execute(
            select(OrderRow.store, category, func.count())
            .join(OrderRow, OrderRow.order_number == TicketRow.order_number)
            .where(_in(period), OrderRow.store.is_not(None), OrderRow.store != "")
            .group_by(OrderRow.store, "category_key")
        )
        scores = await self.session.execute(
            select(TicketRow.satisfaction, func.count())
            .where(_in(period), TicketRow.satisfaction.is_not(None))
            .group_by(TicketRow.satisfaction)
        )
        satisfaction = dict.fromkeys(range(1, 6), 0)
        for score, count in scores:
            satisfaction[int(score)] = satisfaction.get(int(score), 0) + count
        return Figures(
            summary=summary,
            by_store=[(store, key, count) for store, key, count in stores],
            satisfaction_scores=satisfaction,
            top_batches=await self._most(TicketRow.batch, period, TOP_PRODUCTS),
            root_causes=await self._most(TicketRow.root_cause, period),
        )

    async def _sqlite_percentiles(
        self, period: Period
    ) -> tuple[float | None, float | None, float | None]:
        """SQLite has no percentile_cont: the durations come out as two columns of numbers
        (never the tickets) and are interpolated as PostgreSQL does."""
        first, resolution = self._first_answer(), self._resolution()
        rows = await self.session.execute(
            select(first, resolution).where(
                _in(period),
                (TicketRow.first_response_at.is_not(None)) | (TicketRow.resolved_at.is_not(None)),
            )
        )
        answers: list[float] = []
        resolutions: list[float] = []
        for answer, resolved in rows:
            if answer is not None:
                answers.append(answer)
            if resolved is not None:
                resolutions.append(resolved)
        return percentile(answers, 50), percentile(answers, 90), percentile(resolutions, 50)

    # -- the backlog ---------------------------------------------------------------------------

    async def backlog(self, now: datetime) -> list[BacklogRow]:
        """Each ticket of the summary's backlog (with staff at `now`) with its next promise:
        the earliest deadline still to keep. Unordered (`overdue_first` orders them)."""
        rows = await self.session.execute(
            select(
                TicketRow.id,
                TicketRow.category,
                func.coalesce(TicketRow.tier, TicketRow.severity),
                TicketRow.taken_by_name,
                TicketRow.submitted_at,
                DeadlineRow.kind,
                DeadlineRow.due_at,
            )
            .outerjoin(DeadlineRow, and_(DeadlineRow.ticket_id == TicketRow.id, _still_promised()))
            .where(_with_staff(now))
        )
        found: dict[int, BacklogRow] = {}
        for ticket_id, category, severity, taken_by, submitted_at, kind, due_at in rows:
            known = found.get(ticket_id)
            if known is not None and (
                due_at is None or (known.next_due is not None and known.next_due <= due_at)
            ):
                continue
            found[ticket_id] = BacklogRow(
                ticket_id=ticket_id,
                reference=reference(ticket_id),
                category=category or "",
                severity=severity or "",
                taken_by=taken_by or "",
                submitted_at=submitted_at,
                next_due=due_at,
                next_kind=kind or "",
            )
        return list(found.values())

    # -- the record ----------------------------------------------------------------------------

    async def record(self, period: Period, mask: bool = True) -> AsyncGenerator[RecordRow, None]:
        """The complaint record: each ticket submitted in the period, in the order submitted,
        fetched a batch at a time (the export of a year never sits in memory)."""
        query = (
            select(
                TicketRow.id,
                TicketRow.submitted_at,
                TicketRow.channel,
                TicketRow.customer_name,
                TicketRow.contact,
                TicketRow.order_number,
                func.coalesce(TicketRow.product, OrderRow.product),
                func.coalesce(TicketRow.batch, OrderRow.batch),
                TicketRow.category,
                TicketRow.severity,
                TicketRow.tier,
                TicketRow.chosen_option,
                TicketRow.story,
                TicketRow.photos,
                TicketRow.clock_started_at,
                TicketRow.first_response_at,
                TicketRow.first_response_by_name,
                TicketRow.taken_by_name,
                TicketRow.resolved_at,
                TicketRow.status,
                TicketRow.satisfaction,
                TicketRow.root_cause,
                TicketRow.responsible,
                OrderRow.store,
                OrderRow.region,
            )
            .outerjoin(OrderRow, OrderRow.order_number == TicketRow.order_number)
            .where(_in(period))
            .order_by(TicketRow.submitted_at, TicketRow.id)
            .execution_options(yield_per=RECORD_BATCH)
        )
        result = await self.session.stream(query)
        try:  # a partition at a time: one switch into the database's thread per batch, not row
            async for partition in result.partitions():
                for row in partition:
                    yield _record_row(row, mask)
        finally:
            await result.close()

    # -- batch alerts ---------------------------------------------------------------------------

    async def complaints_about(
        self, *, product: str | None = None, batch: str | None = None, since: datetime
    ) -> list[int]:
        """The submitted tickets about this product (or this batch; both: about both) since
        then, oldest first."""
        if product is None and batch is None:
            raise ValueError("complaints about what: give a product or a batch")
        query = select(TicketRow.id).where(_submitted(), TicketRow.submitted_at >= since)
        if product is not None:
            query = query.where(TicketRow.product == product)
        if batch is not None:
            query = query.where(TicketRow.batch == batch)
        rows = await self.session.scalars(query.order_by(TicketRow.submitted_at, TicketRow.id))
        return list(rows)

    # -- one ticket's whole record ----------------------------------------------------------------

    async def timeline(self, ticket_id: int) -> list[TimelineEntry]:
        """The ticket's events and messages in time order (at the same moment, events first)."""
        events = await self.session.execute(
            select(
                EventRow.at,
                EventRow.kind,
                EventRow.actor_name,
                EventRow.actor_role,
                EventRow.detail,
            )
            .where(EventRow.ticket_id == ticket_id)
            .order_by(EventRow.at, EventRow.id)
        )
        messages = await self.session.execute(
            select(
                MessageRow.at,
                MessageRow.kind,
                MessageRow.sender_name,
                MessageRow.direction,
                MessageRow.text,
            )
            .where(MessageRow.ticket_id == ticket_id)
            .order_by(MessageRow.at, MessageRow.id)
        )
        return list(
            heapq.merge(
                (
                    TimelineEntry(at, "event", kind, name, role, detail or "")
                    for at, kind, name, role, detail in events
                ),
                (
                    TimelineEntry(
                        at,
                        "message",
                        kind,
                        name,
                        "customer" if direction == "in" else "staff",
                        text or "",
                        direction,
                    )
                    for at, kind, name, direction, text in messages
                ),
                key=lambda entry: entry.at,
            )
        )


def _number(value: Any) -> float | None:
    """PostgreSQL's avg() is a Decimal: the figures are floats."""
    return None if value is None else float(value)


def _most_first(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _utc_hour(bucket: datetime | str) -> datetime:
    if isinstance(bucket, str):  # SQLite: 'YYYY-MM-DD HH'
        return datetime.strptime(bucket, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return bucket.replace(tzinfo=UTC) if bucket.tzinfo is None else bucket.astimezone(UTC)


def _days(period: Period, hours: Iterable[Any]) -> tuple[dict[str, int], list[DayCount]]:
    """The hour buckets, (utc hour, category, count, answered, answered in time), become the
    category totals and one DayCount for each of the shop's days in the period (every
    category of the period on every day, 0 where none came). Exact for zones whose offset is
    whole hours, as the shop's is."""
    zone = ZoneInfo(period.timezone)
    by_category: dict[str, int] = defaultdict(int)
    counts: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    answered: dict[date, int] = defaultdict(int)
    in_time: dict[date, int] = defaultdict(int)
    local_days: dict[Any, date] = {}  # each hour comes once per category
    for bucket, category, count, answers, timely in hours:
        day = local_days.get(bucket)
        if day is None:
            day = local_days[bucket] = _utc_hour(bucket).astimezone(zone).date()
        by_category[category] += count
        counts[day][category] += count
        answered[day] += answers
        in_time[day] += timely
    order = [key for key, _ in _most_first(by_category)]
    days = [
        DayCount(
            day,
            {key: counts[day].get(key, 0) for key in order}
            if day in counts
            else dict.fromkeys(order, 0),
            answered.get(day, 0),
            in_time.get(day, 0),
        )
        for day in period.days()
    ]
    return by_category, days


def _record_row(row: Any, mask: bool) -> RecordRow:
    (
        ticket_id,
        submitted_at,
        channel,
        customer,
        contact,
        order_number,
        product,
        batch,
        category,
        severity,
        tier,
        option,
        story,
        photos,
        clock_started_at,
        first_response_at,
        answered_by,
        taken_by,
        resolved_at,
        status,
        satisfaction,
        root_cause,
        responsible,
        store,
        region,
    ) = row
    minutes = None
    if first_response_at is not None:
        started = clock_started_at or submitted_at
        minutes = (first_response_at - started).total_seconds() / 60
    remedy = f"{tier}:{option}" if tier and option is not None else tier or ""
    result = status
    if status == Status.CLOSED.value:  # the domain's reasons, as its CLOSED events say them
        result = f"{status}: {'rated' if satisfaction is not None else 'accepted: no answer'}"
    return RecordRow(
        reference=reference(ticket_id),
        submitted_at=submitted_at,
        channel=channel,
        customer=customer,
        contact=mask_phone(contact or "") if mask else contact or "",
        order_number=order_number or "",
        product=product or "",
        batch=batch or "",
        category=category or "",
        severity=tier or severity or "",
        story="\n".join(story or []),
        photos=len(photos or []),
        first_answer_at=first_response_at,
        first_answer_minutes=minutes,
        actions=_actions(taken_by, answered_by, tier, option, resolved_at, status),
        remedy=remedy,
        result=result,
        satisfaction=satisfaction,
        root_cause=root_cause or "",
        responsible=responsible or "",
        store=store or "",
        region=region or "",
    )


def _actions(
    taken_by: str | None,
    answered_by: str | None,
    tier: str | None,
    option: int | None,
    resolved_at: datetime | None,
    status: str,
) -> str:
    """What staff did, from the ticket's own columns (no event is read per ticket)."""
    done = []
    if taken_by:
        done.append(f"taken by {taken_by}")
    if answered_by:
        done.append(f"answered by {answered_by}")
    if tier:
        done.append(f"remedy {tier}:{option}" if option is not None else f"remedy {tier}")
    if resolved_at is not None:
        done.append("resolved")
    if status == Status.CLOSED.value:
        done.append("closed")
    return "; ".join(done)
