"""The intake's rules: what a message already answers, and which question comes next."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.config import BUNDLED_POLICY
from bot.domain.intake import (
    MAX_PHOTOS,
    Step,
    absorb_first_message,
    add_photo,
    holds_nothing,
    next_step,
    normalise_order_number,
    normalise_phone,
    reset_answer,
)
from bot.domain.tickets import CustomerRef, Ticket
from bot.policy import load_policy

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
RULES = load_policy(BUNDLED_POLICY).intake


def new_ticket() -> Ticket:
    return Ticket.receive(CustomerRef("telegram", "1"), "小明", "zh", NOW)


def test_a_greeting_answers_nothing_and_the_category_comes_first() -> None:
    """ "你好" is not a story: the first question is the category."""
    ticket = new_ticket()
    absorb_first_message(ticket, "你好", RULES)
    assert ticket.story == [] and next_step(ticket) is Step.CATEGORY


def test_a_full_first_message_fills_order_phone_category_and_story() -> None:
    """Order number, mobile number, category keywords and the story are all taken."""
    for text in (
        "订单FS2026112301花全都蔫了,电话13800138000",
        "订单 FS2026112301 花全都蔫了,电话 +86 13800138000",
    ):
        ticket = new_ticket()
        absorb_first_message(ticket, text, RULES)
        assert ticket.order_number == "FS2026112301"
        assert ticket.contact == "13800138000"
        assert ticket.category == "quality"
        assert ticket.story == [text] and next_step(ticket) is Step.PHOTOS


def test_order_numbers_are_checked_against_the_shop_pattern() -> None:
    """Spaces and case are forgiven; other shapes are refused."""
    assert normalise_order_number(" fs 2026 112301 ", RULES) == "FS2026112301"
    assert normalise_order_number("20261123011", RULES) == "20261123011"
    assert normalise_order_number("12ab", RULES) is None
    assert normalise_order_number("FS12", RULES) is None


def test_phone_numbers_need_seven_to_fifteen_digits() -> None:
    """A typed phone number is accepted with spaces or dashes; words are not."""
    assert normalise_phone("+86 138-0013-8000") == "+8613800138000"
    assert normalise_phone("随便") is None
    assert normalise_phone("12345") is None


def test_the_card_keeps_ten_photos_at_most() -> None:
    """An eleventh photo is refused for the card (the message itself is still stored)."""
    ticket = new_ticket()
    assert all(add_photo(ticket, f"p{i}") for i in range(MAX_PHOTOS))
    assert add_photo(ticket, "one-more") is False
    assert add_photo(ticket, "p0") is True and len(ticket.photos) == MAX_PHOTOS


def test_changing_an_answer_asks_it_again_and_keeps_the_rest() -> None:
    """reset_answer forgets one answer; next_step returns to it."""
    ticket = new_ticket()
    ticket.category, ticket.order_number = "late", "FS2026112301"
    ticket.story, ticket.photos_done, ticket.contact = ["late"], True, "13800138000"
    assert next_step(ticket) is Step.CONFIRM
    reset_answer(ticket, Step.ORDER)
    assert next_step(ticket) is Step.ORDER and ticket.contact == "13800138000"
    ticket.order_skipped = True
    assert next_step(ticket) is Step.CONFIRM


def test_an_intake_holds_something_once_the_customer_said_anything() -> None:
    """A start or a greeting holds nothing; a category, a photo, a file kept for staff, a
    phone number or an alarm word each is something to pass on."""
    assert holds_nothing(new_ticket())
    greeted = new_ticket()
    absorb_first_message(greeted, "你好", RULES)
    assert holds_nothing(greeted)
    assert not holds_nothing(new_ticket(), kept=1)
    for said in ("category", "contact", "photos", "priority_words"):
        ticket = new_ticket()
        if said == "category":
            ticket.category = "quality"
        elif said == "contact":
            ticket.contact = "13800138000"
        elif said == "photos":
            add_photo(ticket, "p1")
        else:
            ticket.flag(["过敏"], NOW)
        assert not holds_nothing(ticket), said
