"""The shop's phrases (快捷回复 / 话术): short ready answers staff send with one tap, with the
ticket's facts filled in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.domain.remedies import Text

# the facts a phrase may use, written {order} in its text
FACTS = ("customer", "ticket", "order", "category", "deadline", "remedy")
_FIELD = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Phrase:
    """One phrase: a short name staff pick it by, and its text in each language."""

    name: str
    text: Text


def unknown_facts(text: str) -> list[str]:
    """The {names} in a phrase's text that are no fact of a ticket."""
    return [name for name in _FIELD.findall(text) if name not in FACTS]


def fill(text: str, facts: Mapping[str, str]) -> str:
    """The text with each {fact} replaced by the ticket's value (a fact it lacks: left out)."""
    return _FIELD.sub(lambda found: facts.get(found.group(1), ""), text)


def find(phrases: tuple[Phrase, ...], name: str) -> Phrase | None:
    """The phrase with this name (case and surrounding spaces do not matter)."""
    wanted = name.strip().lower()
    return next((p for p in phrases if p.name.lower() == wanted), None)
