"""The never-say guard: phrases staff must not send to a customer (处理投诉十句禁语)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.domain.remedies import Text

# punctuation and spaces do not hide a phrase: "我不知道,不清楚" = "我不知道不清楚"
_NOISE = re.compile(
    r"[\s,.!?;:\-\"'\uff0c\u3002\uff01\uff1f\u3001\uff1b\uff1a\uff5e\u2026\u2014\u201c\u201d\u2018\u2019]+"
)


@dataclass(frozen=True)
class Banned:
    phrase: str
    why: Text
    instead: Text


def _plain(text: str) -> str:
    return _NOISE.sub("", text).lower()


def find_banned(text: str, banned: Iterable[Banned]) -> Banned | None:
    """The first banned phrase the text contains, whatever its punctuation and spacing."""
    plain = _plain(text)
    for item in banned:
        if _plain(item.phrase) and _plain(item.phrase) in plain:
            return item
    return None


def find_signals(text: str, words: Iterable[str]) -> list[str]:
    """Safety and public-threat words in a customer's message."""
    lowered = text.lower()
    return [w for w in words if w.lower() in lowered]
