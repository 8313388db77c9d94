"""The ticket's lifecycle and its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.tickets import (
    Actor,
    CustomerRef,
    EventKind,
    Status,
    Ticket,
    TicketStateError,
    parse_reference,
    reference,
)

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
STAFF = Actor("10", "小王", "staff")
MANAGER = Actor("20", "陈店长", "manager")


def submitted() -> Ticket:
    ticket = Ticket.receive(CustomerRef("telegram", "1"), "小明", "zh", NOW)
    ticket.submit(NOW, "medium", ["蔫"])
    return ticket


def test_every_state_change_is_an_event_with_actor_and_time() -> None:
    """Received to resolved: each step leaves an event in order."""
    ticket = submitted()
    ticket.take(STAFF, NOW + timedelta(minutes=1))
    assert ticket.record_answer(STAFF, NOW + timedelta(minutes=2)) is True
    assert ticket.record_answer(STAFF, NOW + timedelta(minutes=3)) is False
    ticket.offer_remedy("medium", MANAGER, NOW + timedelta(minutes=4))
    ticket.choose_remedy("medium", 1, NOW + timedelta(minutes=5))
    ticket.resolve(STAFF, NOW + timedelta(minutes=6))
    ticket.reopen(MANAGER, NOW + timedelta(minutes=7))
    assert [e.kind for e in ticket.events] == [
        EventKind.RECEIVED,
        EventKind.IN_INTAKE,
        EventKind.SUBMITTED,
        EventKind.TAKEN,
        EventKind.ANSWERED,
        EventKind.REMEDY_OFFERED,
        EventKind.REMEDY_CHOSEN,
        EventKind.RESOLVED,
        EventKind.REOPENED,
    ]
    assert ticket.events[5].actor == MANAGER and ticket.events[5].detail == "medium"
    assert ticket.status is Status.OPEN and ticket.tier is None


def test_a_choice_among_replaced_options_is_refused() -> None:
    """The customer taps an option of a tier the manager has since changed."""
    ticket = submitted()
    ticket.offer_remedy("minor", MANAGER, NOW)
    ticket.offer_remedy("severe", MANAGER, NOW)
    with pytest.raises(TicketStateError):
        ticket.choose_remedy("minor", 0, NOW)
    ticket.choose_remedy("severe", 0, NOW)
    with pytest.raises(TicketStateError):
        ticket.choose_remedy("severe", 1, NOW)  # a double tap


def test_resolved_tickets_refuse_remedies_and_intake_tickets_refuse_staff() -> None:
    """Buttons from an earlier state do nothing."""
    ticket = submitted()
    ticket.resolve(MANAGER, NOW)
    with pytest.raises(TicketStateError):
        ticket.offer_remedy("minor", MANAGER, NOW)
    fresh = Ticket.receive(CustomerRef("telegram", "2"), "小红", "zh", NOW)
    with pytest.raises(TicketStateError):
        fresh.take(STAFF, NOW)


def test_references_read_both_ways() -> None:
    """T-000123 and back."""
    assert reference(123) == "T-000123"
    assert parse_reference("t-000123") == 123
    assert parse_reference("123") is None


def test_a_reference_no_ticket_can_have_is_none() -> None:
    """Other digits than 0-9 and ids beyond the table's integer are no reference (not an
    error further down, in int() or the database)."""
    assert parse_reference("T-²") is None and parse_reference("T-١٢٣") is None
    assert parse_reference("T-0") is None and parse_reference("T-") is None
    assert parse_reference("T-2147483647") == 2**31 - 1
    assert parse_reference("T-2147483648") is None
