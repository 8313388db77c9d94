"""The guided intake: which question comes next, and what a customer's words already answer.

A customer who says everything in the first message is not asked for it again: the first
message is read for an order number, a phone number, a category and the story itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bot.domain.remedies import Category
from bot.domain.signals import match_category
from bot.domain.tickets import Ticket

MAX_PHOTOS = 10
STORY_MIN_CHARS = 8  # shorter first messages ("hello", "你好") are greetings, not the story

_PHONE = re.compile(r"^\+?\d[\d\s()-]{5,18}\d$")
_MOBILE_IN_TEXT = re.compile(r"(?<!\d)(\+?86[\s-]?)?(1[3-9]\d{9})(?!\d)")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class Step(StrEnum):
    """What the bot is waiting for during the intake."""

    CATEGORY = "category"
    ORDER = "order"
    STORY = "story"
    PHOTOS = "photos"
    CONTACT = "contact"
    CONFIRM = "confirm"


EDITABLE = (Step.CATEGORY, Step.ORDER, Step.STORY, Step.PHOTOS, Step.CONTACT)


@dataclass(frozen=True)
class IntakeRules:
    """The shop's rules for the intake: its categories and its order-number form."""

    categories: tuple[Category, ...]
    order_pattern: re.Pattern[str]
    order_example: str

    def category(self, key: str) -> Category | None:
        return next((c for c in self.categories if c.key == key), None)


def next_step(ticket: Ticket) -> Step:
    """The first question the customer has not answered yet."""
    if ticket.category is None:
        return Step.CATEGORY
    if ticket.order_number is None and not ticket.order_skipped:
        return Step.ORDER
    if not ticket.story:
        return Step.STORY
    if not ticket.photos_done:
        return Step.PHOTOS
    if ticket.contact is None and not ticket.contact_skipped:
        return Step.CONTACT
    return Step.CONFIRM


def holds_nothing(ticket: Ticket, kept: int = 0) -> bool:
    """Whether the intake holds nothing the customer said beyond opening the chat (a start, a
    greeting): no category, no order number, no story, no photo, nothing kept for staff
    (`kept`: voice, video, documents, a message the customer changed), no contact, no question
    answered, and no alarm word (staff were paged for that one: its card must follow)."""
    return (
        ticket.category is None
        and ticket.order_number is None
        and not ticket.order_skipped
        and not ticket.story
        and not ticket.photos
        and not ticket.photos_done
        and kept == 0
        and ticket.contact is None
        and not ticket.contact_skipped
        and not ticket.priority_words
    )


def normalise_order_number(text: str, rules: IntakeRules) -> str | None:
    """The order number if the text is one in the shop's form (spaces and case forgiven)."""
    candidate = re.sub(r"\s+", "", text).strip("#:：")
    if rules.order_pattern.fullmatch(candidate):
        return candidate.upper()
    return None


def normalise_phone(text: str) -> str | None:
    candidate = text.strip()
    if _PHONE.match(candidate) and 7 <= sum(ch.isdigit() for ch in candidate) <= 15:
        return re.sub(r"[\s()-]", "", candidate)
    return None


def absorb_first_message(ticket: Ticket, text: str, rules: IntakeRules) -> None:
    """Take from an opening message whatever it already answers."""
    rest = text
    if ticket.order_number is None:
        for token in _TOKEN.findall(text):
            number = normalise_order_number(token, rules)
            if number:
                ticket.order_number = number
                rest = rest.replace(token, " ")
                break
    if ticket.contact is None:
        mobile = _MOBILE_IN_TEXT.search(rest)
        if mobile:
            ticket.contact = mobile.group(2)
            rest = rest.replace(mobile.group(0), " ")
    if ticket.category is None:
        category = match_category(text, rules.categories)
        if category:
            ticket.category = category.key
    if len(re.sub(r"\s+", "", rest)) >= STORY_MIN_CHARS:
        ticket.story.append(text.strip())


def add_photo(ticket: Ticket, file_id: str) -> bool:
    """Keep a photo for the card; False when the card already holds the most it can."""
    if file_id in ticket.photos:
        return True
    if len(ticket.photos) >= MAX_PHOTOS:
        return False
    ticket.photos.append(file_id)
    return True


def reset_answer(ticket: Ticket, step: Step) -> None:
    """Forget one answer so that the intake asks for it again (the summary's "change")."""
    if step is Step.CATEGORY:
        ticket.category = None
    elif step is Step.ORDER:
        ticket.order_number = None
        ticket.order_skipped = False
    elif step is Step.STORY:
        ticket.story.clear()
    elif step is Step.PHOTOS:
        ticket.photos.clear()
        ticket.photos_done = False
    elif step is Step.CONTACT:
        ticket.contact = None
        ticket.contact_skipped = False
