"""The desk's configuration: one typed object, built once from the environment and `.env`."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain.clock import SlaPolicy

BUNDLED_POLICY = Path(__file__).parent / "policies" / "flower_shop.yaml"
PUBLIC_API_URL = "https://api.telegram.org"

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: Any) -> timedelta:
    """Read `90s`, `10m`, `2h` or `5d` (or a timedelta) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError("write a duration as a number and a unit: 90s, 10m, 2h or 5d")
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(amount)})


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Settings(BaseSettings):
    """Everything the desk reads from its environment; names are the README's table."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # `BOT_TOKEN=` left empty in .env counts as not set
    )

    bot_token: SecretStr
    staff_chat_id: int | None = None  # none yet: the set-up mode (README step 3)
    manager_ids: Annotated[tuple[int, ...], NoDecode] = ()
    database_url: str = "sqlite+aiosqlite:///./desk.db"
    telegram_api_url: str = PUBLIC_API_URL
    shop_policy: Path = BUNDLED_POLICY
    default_language: Literal["zh", "en"] = "zh"

    sla_first_response: Duration = timedelta(minutes=10)
    sla_progress: Duration = timedelta(hours=2)
    sla_resolution: Duration = timedelta(hours=24)
    follow_up_after: Duration = timedelta(hours=24)
    auto_close_after: Duration = timedelta(days=5)
    intake_timeout: Duration = timedelta(minutes=10)

    rate_global: float = 30.0
    rate_per_chat: float = 1.0
    rate_chat_burst: float = 5.0
    rate_group_per_minute: float = 20.0

    album_window: Duration = timedelta(seconds=1)
    log_level: str = "INFO"

    def sla(self) -> SlaPolicy:
        return SlaPolicy(
            first_response=self.sla_first_response,
            progress=self.sla_progress,
            resolution=self.sla_resolution,
            follow_up_after=self.follow_up_after,
            auto_close_after=self.auto_close_after,
            intake_timeout=self.intake_timeout,
        )

    @field_validator("manager_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
            try:
                return tuple(int(p) for p in parts)
            except ValueError as exc:
                raise ValueError("comma-separated Telegram user ids, e.g. 12345,67890") from exc
        return value

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not re.fullmatch(r"\d+:[\w-]+", value.get_secret_value().strip()):
            raise ValueError("a token looks like 123456789:AAE..., as @BotFather gives it")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("telegram_api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("a URL starting with http:// or https://")
        return value.rstrip("/")


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line naming it."""


def describe_errors(error: ValidationError) -> str:
    """One clear line naming each bad setting (no traceback)."""
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "settings"
        if item["type"] == "missing":
            if name == "BOT_TOKEN":
                lines.append(
                    "BOT_TOKEN is not set: create a bot with @BotFather in Telegram (/newbot) and "
                    "put its token in .env as BOT_TOKEN=...; to try the desk without a token run "
                    "`python -m bot demo`."
                )
            else:
                lines.append(f"{name} is not set.")
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            lines.append(f"{name} is malformed: {message}.")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once; a bad value raises SettingsError with a readable message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None
