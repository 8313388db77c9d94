"""Button data: short prefixes, ids only (Telegram allows 64 bytes)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class IntakeCb(CallbackData, prefix="i"):
    """A customer's tap during the intake: action and an optional value (category key...)."""

    action: str
    value: str = ""


class CardCb(CallbackData, prefix="t"):
    """A tap on a ticket's card in the staff group."""

    action: str  # take | tier | close | reopen | done
    ticket_id: int
    tier: str = ""


class OptionCb(CallbackData, prefix="o"):
    """The customer's choice among the remedy options offered for their ticket."""

    ticket_id: int
    tier: str
    option: int


class RateCb(CallbackData, prefix="r"):
    """The customer's satisfaction score (1-5) after the fix; 0: no comment to add."""

    ticket_id: int
    score: int
