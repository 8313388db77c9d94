"""Signals read from what the customer wrote: the severity it suggests, and from which words."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.domain.remedies import Category, Ladder


@dataclass(frozen=True)
class Suggestion:
    """A tier the text points to, and the words that made it."""

    tier_key: str
    words: tuple[str, ...]


def suggest_severity(texts: Iterable[str], ladder: Ladder) -> Suggestion | None:
    """The most severe tier whose keywords appear in the texts, or None."""
    blob = "\n".join(texts).lower()
    found: Suggestion | None = None
    for tier in ladder.tiers:  # from minor to critical: the last match wins
        words = tuple(w for w in tier.keywords if w.lower() in blob)
        if words:
            found = Suggestion(tier.key, words)
    return found


def match_category(text: str, categories: Iterable[Category]) -> Category | None:
    """The category a free text names (its label or one of its keywords), if exactly one fits."""
    lowered = text.strip().lower()
    if not lowered:
        return None
    hits = []
    for category in categories:
        names = (category.label.zh.lower(), category.label.en.lower(), category.key.lower())
        if lowered in names:
            return category
        if any(word.lower() in lowered for word in category.keywords):
            hits.append(category)
    return hits[0] if len(hits) == 1 else None
