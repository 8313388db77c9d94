"""Telegram's Mini Apps: who opened the page, from the `initData` Telegram hands it.

The check is Telegram's own (https://core.telegram.org/bots/webapps, "Validating data received
via the Mini App"): the data-check-string is every received field but `hash`, as `key=value`
lines sorted by key and joined by a line feed; the secret key is HMAC-SHA256 of the bot's token
keyed with "WebAppData"; the hash is the hex HMAC-SHA256 of the data-check-string keyed with that
secret. A `signature` field (Ed25519, for third parties) is one of the fields the hash covers;
checking the hash is enough here. Nothing of the data is trusted before the hash matches."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import parse_qsl

from bot.dashboard import Refused, Visitor
from bot.render import language_of

MAX_AGE = timedelta(hours=24)  # an older `auth_date` is refused

Reason = Literal["bad_hash", "expired", "no_user"]


class InitDataRefused(Exception):
    """The `initData` does not prove who opened the page; `reason` says why."""

    def __init__(self, reason: Reason, language_code: str | None = None) -> None:
        super().__init__(reason)
        self.reason: Reason = reason
        # the user's language where the data was genuine (the refusal is said in it)
        self.language_code = language_code


@dataclass(frozen=True)
class WebAppUser:
    """Who opened the Mini App, as Telegram vouches for them."""

    id: int
    first_name: str
    language_code: str | None


def _secret(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def sign(fields: dict[str, str], bot_token: str) -> str:
    """The hash Telegram puts beside these fields (hex)."""
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    return hmac.new(_secret(bot_token), check.encode(), hashlib.sha256).hexdigest()


def check_init_data(
    init_data: str, bot_token: str, now: datetime, max_age: timedelta = MAX_AGE
) -> WebAppUser:
    """The user the `initData` query string vouches for; `InitDataRefused` where its hash is not
    the bot's (`bad_hash`, also where there is none), it is older than `max_age` (`expired`),
    or it names no user (`no_user`)."""
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataRefused("bad_hash") from None
    fields = dict(pairs)
    given = fields.pop("hash", None)
    if given is None or len(fields) != len(pairs) - 1:  # no hash, or a field given twice
        raise InitDataRefused("bad_hash")
    if not hmac.compare_digest(sign(fields, bot_token).encode(), given.encode()):
        raise InitDataRefused("bad_hash")
    user = _user(fields.get("user"))
    language = user.language_code if user is not None else None
    try:
        signed_at = int(fields.get("auth_date", ""))
    except ValueError:
        raise InitDataRefused("expired", language) from None
    if now.timestamp() - signed_at > max_age.total_seconds():
        raise InitDataRefused("expired", language)
    if user is None:
        raise InitDataRefused("no_user")
    return user


def _user(raw: str | None) -> WebAppUser | None:
    """The `user` field (JSON), where it names a user by id."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), int):
        return None
    language = data.get("language_code")
    return WebAppUser(
        id=data["id"],
        first_name=str(data.get("first_name", "")),
        language_code=language if isinstance(language, str) else None,
    )


def _claimed_language(init_data: str) -> str | None:
    """The language the data's `user` claims, genuine or not: only the words of a refusal are
    chosen by it (the refusal page speaks as the person who opened it would read)."""
    try:
        user = _user(dict(parse_qsl(init_data, keep_blank_values=True)).get("user"))
    except ValueError:
        return None
    return user.language_code if user is not None else None


class MiniAppSignIn:
    """The dashboard's sign-in from Telegram: the `initData` checked, then the user asked about
    as every manager's command asks (`Managers.is_manager`: MANAGER_IDS, and the group's
    administrators where the policy says so)."""

    def __init__(
        self,
        bot_token: str,
        is_manager: Callable[[int], Awaitable[bool]],
        default_language: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._token = bot_token
        self.is_manager = is_manager
        self.default_language = default_language
        self.clock = clock

    async def __call__(self, init_data: str) -> Visitor:
        try:
            user = check_init_data(init_data, self._token, self.clock())
        except InitDataRefused as exc:
            claimed = exc.language_code or _claimed_language(init_data)
            raise Refused(exc.reason, language_of(claimed, self.default_language)) from None
        language = language_of(user.language_code, self.default_language)
        if not await self.is_manager(user.id):
            raise Refused("not_manager", language)
        return Visitor(str(user.id), language)

    async def still_manager(self, user_id: str) -> bool:
        """Whether the manager a session was opened for still is one (asked at each call)."""
        return user_id.isdigit() and await self.is_manager(int(user_id))
