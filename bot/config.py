"""The desk's configuration: one typed object, built once from the environment and `.env`."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain.clock import SlaPolicy

BUNDLED_POLICY = Path(__file__).parent / "policies" / "flower_shop.yaml"
PUBLIC_API_URL = "https://api.telegram.org"
WECOM_PUBLIC_API_URL = "https://qyapi.weixin.qq.com"
WECOM_PUBLIC_OAUTH_URL = "https://open.weixin.qq.com"  # WeCom's web sign-in (connect/oauth2)
WECOM_REQUIRED = (
    "wecom_corp_id",
    "wecom_secret",
    "wecom_token",
    "wecom_aes_key",
    "wecom_open_kfid",
)
# the staff room in WeCom: the shop's self-built app (自建应用)
WECOM_APP_REQUIRED = (
    "wecom_corp_id",
    "wecom_agent_id",
    "wecom_app_secret",
    "wecom_app_token",
    "wecom_app_aes_key",
)

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

    # Telegram's bot: customers on Telegram, and the staff group; with STAFF_ROOM=wecom it may
    # be left out (the desk then runs with no Telegram at all)
    bot_token: SecretStr | None = None
    staff_room: Literal["telegram", "wecom"] = "telegram"
    staff_chat_id: int | None = None  # none yet: the set-up mode (README step 3)
    manager_ids: Annotated[tuple[int, ...], NoDecode] = ()
    database_url: str = "sqlite+aiosqlite:///./desk.db"
    # SQLite: how long a write waits for another writer before the work is tried again later
    database_busy_timeout: Duration = timedelta(seconds=60)
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

    # the instance's one HTTP server: the Telegram webhook, WeCom's callbacks, /healthz, /metrics
    http_host: str = "127.0.0.1"
    http_port: int = Field(  # WECOM_CALLBACK_PORT: its old name, still read
        8080, validation_alias=AliasChoices("http_port", "wecom_callback_port")
    )
    # set: Telegram calls this public HTTPS address (its path is served here); empty: long polling
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None  # sent in setWebhook, checked on every call
    # the public https:// base of this server (the dashboard); empty: the origin of WEBHOOK_URL
    public_url: str | None = None
    # set: several instances share the rate windows and the short locks here (redis://host:6379/0)
    redis_url: SecretStr | None = None
    instance_name: str = ""  # empty: this host's name and the process id

    # WeChat customers through WeCom customer service (微信客服); all five, or none
    wecom_corp_id: str | None = None
    wecom_secret: SecretStr | None = None
    wecom_token: SecretStr | None = None
    wecom_aes_key: SecretStr | None = None
    wecom_open_kfid: str | None = None
    wecom_api_url: str = WECOM_PUBLIC_API_URL
    wecom_callback_path: str = "/wecom/callback"
    wecom_group_webhook: SecretStr | None = None  # a WeCom group robot's URL (optional)

    # the staff room in WeCom (STAFF_ROOM=wecom): the self-built app and who uses it
    wecom_agent_id: int | None = None
    wecom_app_secret: SecretStr | None = None
    wecom_app_token: SecretStr | None = None
    wecom_app_aes_key: SecretStr | None = None
    wecom_app_callback_path: str = "/wecom/app"
    # where the app's links sign a member in (connect/oauth2/authorize): the dashboard's card
    wecom_oauth_url: str = WECOM_PUBLIC_OAUTH_URL
    # the WW_verify_….txt file WeCom gives to prove PUBLIC_URL's domain (the app's trusted
    # domain for web sign-in): served at the server's root
    wecom_verify_file: Path | None = None
    wecom_staff_ids: Annotated[tuple[str, ...], NoDecode] = ()
    wecom_manager_ids: Annotated[tuple[str, ...], NoDecode] = ()

    @property
    def wecom(self) -> bool:
        """Whether WeChat customers are served (the customer-service settings are present)."""
        return self.wecom_open_kfid is not None

    @property
    def instance(self) -> str:
        """Which instance this is (the metrics' label, the holder of claimed work)."""
        return self.instance_name or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def webhook_path(self) -> str | None:
        """Where Telegram's webhook calls arrive on this instance's server (webhook mode)."""
        return (urlsplit(self.webhook_url).path or "/") if self.webhook_url else None

    @property
    def telegram(self) -> bool:
        """Whether the desk speaks Telegram at all (a bot token is given)."""
        return self.bot_token is not None

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

    @field_validator("wecom_staff_ids", "wecom_manager_ids", mode="before")
    @classmethod
    def _split_userids(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = tuple(p for p in re.split(r"[,\s]+", value.strip()) if p)
            if any(not re.fullmatch(r"[\w.@-]{1,64}", p) for p in parts):
                raise ValueError("comma-separated WeCom userids (通讯录), e.g. zhangsan,lisi")
            return parts
        return value

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        if not re.fullmatch(r"\d+:[\w-]+", value.get_secret_value().strip()):
            raise ValueError("a token looks like 123456789:AAE..., as @BotFather gives it")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("telegram_api_url", "wecom_api_url", "wecom_oauth_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("a URL starting with http:// or https://")
        return value.rstrip("/")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme == "https" and parts.hostname:
            return value.strip()
        if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
            return value.strip()  # the tests' stand-in calls a local address
        raise ValueError(
            "the public https:// address Telegram calls, e.g. https://desk.example.com/telegram "
            "(plain http:// only on 127.0.0.1, for tests)"
        )

    @field_validator("wecom_verify_file")
    @classmethod
    def _wecom_verify_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if not re.fullmatch(r"WW_verify_[A-Za-z0-9]{1,64}\.txt", value.name):
            raise ValueError("the file WeCom gives, named WW_verify_….txt, as it was downloaded")
        if not value.is_file() or value.stat().st_size > 1024:
            raise ValueError(f"{value} is not there (or is not WeCom's few bytes)")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.hostname and (
            parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname))
        ):
            return value.strip().rstrip("/")
        raise ValueError(
            "the desk's public https:// address, e.g. https://desk.example.com "
            "(plain http:// only on 127.0.0.1, for tests)"
        )

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("1-256 letters, digits, _ or - (Telegram's rule for a secret token)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(
            r"^(redis|rediss|unix)://", value.get_secret_value()
        ):
            raise ValueError("a URL like redis://127.0.0.1:6379/0")
        return value

    @field_validator("wecom_aes_key", "wecom_app_aes_key")
    @classmethod
    def _aes_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9+/]{43}", value.get_secret_value()):
            raise ValueError("the EncodingAESKey has 43 letters and digits (WeCom's console)")
        return value

    @field_validator("wecom_callback_path", "wecom_app_callback_path")
    @classmethod
    def _path(cls, value: str) -> str:
        return value if value.startswith("/") else f"/{value}"

    @model_validator(mode="after")
    def _wecom_complete(self) -> Settings:
        own = [n for n in WECOM_REQUIRED if n != "wecom_corp_id" and getattr(self, n) is not None]
        if own or (self.wecom_corp_id is not None and self.staff_room != "wecom"):
            missing = [n.upper() for n in WECOM_REQUIRED if getattr(self, n) is None]
            if missing:
                raise ValueError(
                    f"WeChat needs all five WeCom settings; missing {', '.join(missing)}"
                )
        return self

    @model_validator(mode="after")
    def _public_url_default(self) -> Settings:
        """No PUBLIC_URL: the origin of WEBHOOK_URL (the same server, seen from outside)."""
        if self.public_url is None and self.webhook_url is not None:
            parts = urlsplit(self.webhook_url)
            self.public_url = f"{parts.scheme}://{parts.netloc}"
        return self

    @model_validator(mode="after")
    def _webhook_complete(self) -> Settings:
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError(
                "WEBHOOK_URL needs WEBHOOK_SECRET: a random string Telegram sends with every call "
                "(e.g. the output of `openssl rand -hex 32`), so no one else can post updates"
            )
        if self.webhook_url is not None and self.bot_token is None:
            raise ValueError("WEBHOOK_URL is Telegram's: it needs BOT_TOKEN")
        return self

    @model_validator(mode="after")
    def _staff_room_complete(self) -> Settings:
        if self.staff_room == "telegram":
            if self.bot_token is None:
                raise ValueError(BOT_TOKEN_MISSING)
            return self
        missing = [n.upper() for n in WECOM_APP_REQUIRED if getattr(self, n) is None]
        if missing:
            raise ValueError(
                f"STAFF_ROOM=wecom needs the WeCom app's settings; missing {', '.join(missing)}"
            )
        if not self.wecom_manager_ids:
            raise ValueError(
                "STAFF_ROOM=wecom needs WECOM_MANAGER_IDS: the WeCom userids of those who may "
                "decide compensation (each can send /whoami to the app)"
            )
        if self.bot_token is None and not self.wecom:
            raise ValueError(
                "no customer can reach the desk: give BOT_TOKEN (Telegram) or the five WeCom "
                "customer-service settings (WeChat), or both"
            )
        return self


BOT_TOKEN_MISSING = (
    "BOT_TOKEN is not set: create a bot with @BotFather in Telegram (/newbot) and put its token "
    "in .env as BOT_TOKEN=...; to try the desk without a token run `python -m bot demo`"
)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line naming it."""


def describe_errors(error: ValidationError) -> str:
    """One clear line naming each bad setting (no traceback)."""
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "settings"
        if item["type"] == "missing":
            lines.append(f"{name} is not set.")
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            lines.append(f"{name} is malformed: {message}." if item["loc"] else f"{message}.")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once; a bad value raises SettingsError with a readable message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None
