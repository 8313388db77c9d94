"""One Jinja environment for every text the bot says; filters for times and durations."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from jinja2 import (
    BytecodeCache,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)
from jinja2.bccache import Bucket

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
LANGUAGES = ("zh", "en")


class _Compiled(BytecodeCache):
    """The templates compiled once per process, kept in memory: a desk built again in the same
    process (the demo's, the tests') does not compile them again. Keyed by Jinja on the file's
    name and a checksum of its text, so an edited file is compiled anew."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _Compiled()


class Render(Protocol):
    def __call__(self, language: str, name: str, /, **context: Any) -> str: ...


def language_of(language_code: str | None, default: str) -> str:
    """zh for a Chinese Telegram language, en for any other; the default when unknown."""
    if not language_code:
        return default
    return "zh" if language_code.lower().startswith("zh") else "en"


def _span(seconds: float | None, language: str = "zh") -> str:
    """A measured time, rounded for reading: 6.5 分钟, 1.2 小时, 2.0 天 (— when none)."""
    if seconds is None:
        return "—"
    for size, zh, en in ((86400, "天", "days"), (3600, "小时", "h"), (60, "分钟", "min")):
        if seconds >= size * 1.5 or size == 60:
            amount = f"{seconds / size:.1f}"
            return f"{amount} {zh}" if language == "zh" else f"{amount} {en}"
    return "—"  # pragma: no cover


def _duration(value: timedelta, language: str = "zh") -> str:
    seconds = int(value.total_seconds())
    units = (
        (86400, "天", "day"),
        (3600, "小时", "hour"),
        (60, "分钟", "minute"),
        (1, "秒", "second"),
    )
    for size, zh, en in units:
        if seconds >= size and seconds % size == 0 or size == 1:
            amount = seconds // size
            if language == "zh":
                return f"{amount} {zh}"
            return f"{amount} {en}{'' if amount == 1 else 's'}"
    return str(value)


def make_renderer(timezone: str, templates: Path = TEMPLATES) -> Render:
    """A render function: render(language, "customer/welcome.html", **context) -> text."""
    env = Environment(
        loader=FileSystemLoader(str(templates)),
        autoescape=select_autoescape(["html"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        bytecode_cache=_COMPILED,
    )
    zone = ZoneInfo(timezone)

    def local_time(value: datetime, fmt: str = "%m-%d %H:%M") -> str:
        return value.astimezone(zone).strftime(fmt)

    env.filters["local_time"] = local_time
    env.filters["duration"] = _duration
    env.filters["span"] = _span

    def render(language: str, name: str, /, **context: Any) -> str:
        language = language if language in LANGUAGES else "en"
        text = env.get_template(f"{language}/{name}").render(lang=language, **context)
        return text.strip()

    return render
