"""The shop's remedy ladder: severity tiers and the options a customer may choose from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class Text:
    """A short text the shop wrote in each language it serves."""

    zh: str
    en: str

    def in_(self, language: str) -> str:
        return self.zh if language == "zh" else self.en


@dataclass(frozen=True)
class RemedyOption:
    """One thing a customer may choose: what they get, what staff must do, how much, how soon."""

    key: str
    label: Text
    staff_action: Text
    amount: float = 0.0
    within: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class Tier:
    """A severity step of the ladder with its 0-3 options (none: the manager goes in person)."""

    key: str
    label: Text
    options: tuple[RemedyOption, ...] = ()
    keywords: tuple[str, ...] = ()
    in_person: bool = False

    def option(self, index: int) -> RemedyOption:
        if not 0 <= index < len(self.options):
            raise UnknownRemedy(f"{self.key} has no option {index}")
        return self.options[index]


@dataclass(frozen=True)
class Category:
    """A kind of complaint the shop recognises (the customer picks one)."""

    key: str
    label: Text
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ladder:
    """The tiers in order, from minor to critical."""

    tiers: tuple[Tier, ...] = field(default_factory=tuple)

    def tier(self, key: str) -> Tier:
        for tier in self.tiers:
            if tier.key == key:
                return tier
        raise UnknownRemedy(f"no tier {key!r}")


class UnknownRemedy(LookupError):
    """A tier or option the policy does not have (stale or forged button data)."""
