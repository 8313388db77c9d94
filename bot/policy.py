"""The shop's policy file (YAML or TOML): categories, order numbers, the remedy ladder, banned
phrases. Validated at start; a mistake stops the start with a line that says where it is."""

from __future__ import annotations

import re
import tomllib
from datetime import time as dt_time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.config import Duration
from bot.domain.clock import WorkingHours
from bot.domain.guard import Banned, find_banned
from bot.domain.history import RepeatRule
from bot.domain.insight import BatchRule
from bot.domain.intake import IntakeRules
from bot.domain.phrases import FACTS, Phrase, unknown_facts
from bot.domain.remedies import Category, Ladder, RemedyOption, Text, Tier


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextIn(_Model):
    zh: str
    en: str

    def build(self) -> Text:
        return Text(self.zh, self.en)


class OptionIn(_Model):
    key: str
    label: TextIn
    staff_action: TextIn
    amount: float = 0
    within: Duration = timedelta(hours=24)


class TierIn(_Model):
    key: str
    label: TextIn
    keywords: list[str] = []
    in_person: bool = False
    options: Annotated[list[OptionIn], Field(max_length=3)] = []


class CategoryIn(_Model):
    key: str
    label: TextIn
    keywords: list[str] = []


class OrderNumberIn(_Model):
    pattern: str
    example: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_SAFETY = ["受伤", "过敏", "中毒", "异物", "漏电", "起火", "医院"]
DEFAULT_PUBLIC = ["差评", "曝光", "媒体", "12315", "消协", "律师", "起诉"]
DEFAULT_WHY = Text(
    "这句话会让客户觉得被推卸、被轻视,只会让情绪更激动。",
    "It tells the customer they are being brushed off; it makes things worse.",
)
DEFAULT_INSTEAD = Text(
    "非常抱歉给您添麻烦了,我马上帮您核实处理,尽快给您答复。",
    "I'm very sorry for the trouble. I'm looking into it right now and will get back to you "
    "shortly.",
)


CLOCK_TIME = re.compile(r"([01]?\d|2[0-4]):([0-5]\d)")


def _clock_time(value: object, *, midnight_24: bool = False) -> dt_time:
    """A time of day as the policy writes it: "09:00" (in quotes: YAML reads 21:00 unquoted as
    a number), or a TOML local time; "24:00" is the midnight that ends a day."""
    if isinstance(value, dt_time) and value.tzinfo is None:
        return value
    match = CLOCK_TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        read_as = " (YAML reads an unquoted 21:00 as a number)" if isinstance(value, int) else ""
        raise ValueError(f'a time of day in quotes, such as "09:00"; not {value!r}{read_as}')
    hour, minute = int(match[1]), int(match[2])
    if hour == 24 and (minute or not midnight_24):
        raise ValueError(f"a time of day from 00:00 to 23:59; not {value!r}")
    return dt_time(hour % 24, minute)


class WorkingHoursIn(_Model):
    """One window a day, from `opens` to `closes` in the shop's time zone; a window that closes
    at or before it opens (00:00, or 22:00 to 02:00) ends the next day, and belongs to the day
    it opens on."""

    opens: dt_time
    closes: dt_time
    days: list[str] = list(DAYS)

    @field_validator("opens", mode="before")
    @classmethod
    def _opens(cls, value: object) -> dt_time:
        return _clock_time(value)

    @field_validator("closes", mode="before")
    @classmethod
    def _closes(cls, value: object) -> dt_time:
        return _clock_time(value, midnight_24=True)

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one day (mon, tue, wed, thu, fri, sat, sun)")
        bad = [d for d in value if d.lower()[:3] not in DAYS]
        if bad:
            raise ValueError(f"days are mon, tue, wed, thu, fri, sat, sun; not {bad}")
        return [d.lower()[:3] for d in value]

    @model_validator(mode="after")
    def _a_window(self) -> WorkingHoursIn:
        if self.opens == self.closes:
            raise ValueError(
                f"opens and closes are both {self.opens:%H:%M}: no window; to stay open all "
                "day, remove working_hours"
            )
        return self


class SignalsIn(_Model):
    safety: list[str] = DEFAULT_SAFETY
    public: list[str] = DEFAULT_PUBLIC


class BannedIn(_Model):
    phrase: str
    why: TextIn | None = None
    instead: TextIn | None = None


class PhraseIn(_Model):
    """A ready answer staff send with `/p NAME`: a short name, a text per language; the text
    may use the ticket's facts, {customer}, {ticket}, {order}, {category}, {deadline}, {remedy}."""

    name: Annotated[str, Field(min_length=1, max_length=16, pattern=r"^\S+$")]
    text: TextIn


class OrderColumnsIn(_Model):
    """Which header names in the shop's order files mean what (any of the names; case and
    spaces do not matter)."""

    order_number: list[str] = ["订单号", "订单编号", "单号", "order", "order_number", "order no"]
    product: list[str] = ["商品", "商品名称", "产品", "品名", "product"]
    batch: list[str] = ["批次", "批次号", "batch", "lot"]
    delivered_at: list[str] = [
        "送达时间", "配送时间", "收货时间", "发货时间", "delivered_at", "delivery time"
    ]  # fmt: skip
    store: list[str] = ["门店", "店铺", "store", "shop"]
    region: list[str] = ["区域", "地区", "城市", "region", "city"]
    notes: list[str] = ["备注", "notes", "note", "remarks"]


class OrdersIn(_Model):
    columns: OrderColumnsIn = OrderColumnsIn()
    # an HTTP endpoint that answers an order number with JSON (the same field names as the
    # columns: product, batch, delivered_at, store, region, notes); {order_number} is replaced
    endpoint: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and (
            not re.match(r"^https?://", value) or "{order_number}" not in value
        ):
            raise ValueError("an http(s) URL with {order_number} in it")
        return value


class BatchAlertIn(_Model):
    threshold: Annotated[int, Field(ge=2, le=1000)] = 3
    window: Duration = timedelta(hours=24)


class RepeatIn(_Model):
    count: Annotated[int, Field(ge=2, le=100)] = 3
    window: Duration = timedelta(days=30)


class WeeklyReportIn(_Model):
    day: str = "mon"
    time: dt_time = dt_time(9, 0)

    @field_validator("day")
    @classmethod
    def _day(cls, value: str) -> str:
        if value.lower()[:3] not in DAYS:
            raise ValueError("one of mon, tue, wed, thu, fri, sat, sun")
        return value.lower()[:3]


class ReportsIn(_Model):
    mask_phones: bool = True  # exports show 138****5678
    weekly: WeeklyReportIn | None = WeeklyReportIn()  # null: no weekly report


class PolicyIn(_Model):
    shop_name: TextIn
    timezone: str = "Asia/Shanghai"
    working_hours: WorkingHoursIn | None = None
    managers_include_group_admins: bool = False
    order_number: OrderNumberIn
    categories: Annotated[list[CategoryIn], Field(min_length=1, max_length=12)]
    tiers: Annotated[list[TierIn], Field(min_length=1, max_length=6)]
    signals: SignalsIn = SignalsIn()
    banned_phrases: list[str | BannedIn] = []
    phrases: Annotated[list[PhraseIn], Field(max_length=40)] = []
    orders: OrdersIn = OrdersIn()
    batch_alert: BatchAlertIn = BatchAlertIn()
    repeat: RepeatIn = RepeatIn()
    reports: ReportsIn = ReportsIn()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from exc
        return value


class Policy:
    """The validated policy, as the domain and the handlers use it."""

    def __init__(self, raw: PolicyIn) -> None:
        self.raw = raw
        self.shop_name = raw.shop_name.build()
        self.timezone = raw.timezone
        self.managers_include_group_admins = raw.managers_include_group_admins
        self.intake = IntakeRules(
            categories=tuple(
                Category(c.key, c.label.build(), tuple(c.keywords)) for c in raw.categories
            ),
            order_pattern=re.compile(raw.order_number.pattern, re.IGNORECASE),
            order_example=raw.order_number.example,
        )
        self.ladder = Ladder(
            tuple(
                Tier(
                    key=t.key,
                    label=t.label.build(),
                    keywords=tuple(t.keywords),
                    in_person=t.in_person,
                    options=tuple(
                        RemedyOption(
                            o.key, o.label.build(), o.staff_action.build(), o.amount, o.within
                        )
                        for o in t.options
                    ),
                )
                for t in raw.tiers
            )
        )
        self.banned = tuple(
            Banned(b, DEFAULT_WHY, DEFAULT_INSTEAD)
            if isinstance(b, str)
            else Banned(
                b.phrase,
                b.why.build() if b.why else DEFAULT_WHY,
                b.instead.build() if b.instead else DEFAULT_INSTEAD,
            )
            for b in raw.banned_phrases
        )
        self.banned_phrases = tuple(b.phrase for b in self.banned)
        self.phrases = tuple(Phrase(p.name, p.text.build()) for p in raw.phrases)
        self.signal_words = (*raw.signals.safety, *raw.signals.public)
        self.orders = raw.orders
        self.batch_rule = BatchRule(raw.batch_alert.threshold, raw.batch_alert.window)
        self.repeat_rule = RepeatRule(raw.repeat.count, raw.repeat.window)
        self.mask_phones = raw.reports.mask_phones
        weekly = raw.reports.weekly
        self.weekly_report = (DAYS.index(weekly.day), weekly.time) if weekly else None
        hours = raw.working_hours
        self.hours = WorkingHours(
            timezone=raw.timezone,
            opens=hours.opens if hours else None,
            closes=hours.closes if hours else None,
            days=frozenset(DAYS.index(d) for d in hours.days) if hours else frozenset(range(7)),
        )


# libyaml's loader where PyYAML was built with it (its wheels are): the same documents, read
# some ten times faster than the pure-Python one (~50 ms of every start)
_YAML: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PolicyError(Exception):
    """The policy file cannot be used; the message says which file and which entry."""


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"SHOP_POLICY: cannot read {path}: {exc.strerror}") from None
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else yaml.load(text, _YAML)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"SHOP_POLICY: {path} is not valid YAML/TOML: {exc}") from None
    try:
        raw = PolicyIn.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(e['loc'], data)}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"SHOP_POLICY: {path}: {problems}") from None
    _check_unique(raw)
    policy = Policy(raw)
    _check_phrases(policy)
    return policy


def _where(loc: tuple[int | str, ...], data: Any) -> str:
    """Where a mistake is, as the file says it: a phrase by its name (`phrases.要照片.text.en`)."""
    parts = [str(p) for p in loc]
    if len(loc) >= 2 and loc[0] == "phrases" and isinstance(loc[1], int):
        try:
            parts[1] = repr(str(data["phrases"][loc[1]]["name"]))
        except (KeyError, IndexError, TypeError):
            pass
    return ".".join(parts) or "file"


def _check_unique(raw: PolicyIn) -> None:
    for what, keys in (
        ("categories", [c.key for c in raw.categories]),
        ("tiers", [t.key for t in raw.tiers]),
    ):
        if len(set(keys)) != len(keys):
            raise PolicyError(f"SHOP_POLICY: two {what} share a key: {keys}")
    for tier in raw.tiers:
        if not tier.options and not tier.in_person:
            raise PolicyError(
                f"SHOP_POLICY: tier {tier.key!r} has no options; give it 1-3 options "
                "or set in_person: true"
            )


def _check_phrases(policy: Policy) -> None:
    """Each phrase has its own name, uses only the ticket's facts, and says nothing the
    never-say guard would stop."""
    seen: set[str] = set()
    for phrase in policy.phrases:
        where = f"SHOP_POLICY: phrase {phrase.name!r}"
        if phrase.name.lower() in seen:
            raise PolicyError(f"{where}: two phrases share this name")
        seen.add(phrase.name.lower())
        for language in ("zh", "en"):
            text = phrase.text.in_(language)
            if not text.strip():
                raise PolicyError(f"{where}: no {language} text")
            unknown = unknown_facts(text)
            if unknown:
                raise PolicyError(
                    f"{where} ({language}): unknown fact {{{unknown[0]}}}; a phrase may use "
                    + ", ".join(f"{{{f}}}" for f in FACTS)
                )
            banned = find_banned(text, policy.banned)
            if banned is not None:
                raise PolicyError(
                    f"{where} ({language}): it says {banned.phrase!r}, which staff must never "
                    "say to a customer (banned_phrases)"
                )
