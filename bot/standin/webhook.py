"""Telegram's webhook, as the Bot API stand-in keeps it: what `setWebhook` accepts, and one
delivery of an update (an HTTP POST of its JSON, the secret in a header).

Real Telegram takes only HTTPS URLs on ports 443, 80, 88 or 8443. The stand-in keeps that rule
for other hosts but lets tests use plain `http://` on a loopback address, on any port, as the
desk's settings do (WEBHOOK_URL).
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import aiohttp
from yarl import URL

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TELEGRAM_PORTS = (443, 80, 88, 8443)
_SECRET = re.compile(r"[A-Za-z0-9_-]*")


class WebhookRefused(ValueError):
    """setWebhook's parameters break Telegram's rules (the text is its description)."""


@dataclass
class Webhook:
    """What `setWebhook` set, and how delivering to it went lately (getWebhookInfo)."""

    url: str
    secret: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None

    def takes(self, update: dict[str, Any]) -> bool:
        """Whether this kind of update is sent at all (`allowed_updates`)."""
        if not self.allowed_updates:
            return True
        return any(kind in update for kind in self.allowed_updates)

    def failed(self, message: str) -> None:
        self.last_error_date = int(time.time())
        self.last_error_message = message


def checked_url(url: str) -> str:
    """The URL as given, or WebhookRefused with Telegram's description of what is wrong."""
    parsed = URL(url)
    if not parsed.is_absolute() or not parsed.host:
        raise WebhookRefused("Bad Request: bad webhook: Failed to resolve host")
    if _loopback(parsed.host) and parsed.scheme in ("http", "https"):
        return url  # the stand-in's relaxation, for tests: http and any port on this machine
    if parsed.scheme != "https":
        raise WebhookRefused("Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
    if parsed.port not in TELEGRAM_PORTS:
        raise WebhookRefused(
            "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
        )
    return url


def checked_secret(secret: object) -> str | None:
    """The secret token (None when not given), or WebhookRefused: 1-256 of A-Z a-z 0-9 _ -."""
    if secret is None or secret == "":
        return None
    text = str(secret)
    if len(text) > 256:
        raise WebhookRefused("Bad Request: secret token is too long")
    if not _SECRET.fullmatch(text):
        raise WebhookRefused("Bad Request: secret token contains unallowed characters")
    return text


def checked_max_connections(value: object) -> int:
    """1-100, 40 when not given. (Telegram's wording for a value out of range is not known:
    the stand-in refuses it, so that a desk asking for it hears so.)"""
    if value is None or value == "":
        return 40
    try:
        number = int(str(value))
    except ValueError:
        raise WebhookRefused("Bad Request: max_connections must be a number") from None
    if not 1 <= number <= 100:
        raise WebhookRefused("Bad Request: max_connections must be between 1 and 100")
    return number


def allowed_updates(value: object) -> list[str] | None:
    """The update kinds asked for: a list (or its JSON, already decoded); [] means all."""
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return [str(kind) for kind in value]
    raise WebhookRefused("Bad Request: can't parse allowed updates")


def chat_of(update: dict[str, Any]) -> object:
    """The chat an update belongs to: Telegram sends one chat's updates one at a time, in
    order; an update of no chat is a lane of its own."""
    for kind, body in update.items():
        if not isinstance(body, dict):
            continue
        chat = body.get("chat")
        if chat is None and isinstance(body.get("message"), dict):
            chat = body["message"].get("chat")  # a tapped button: the chat of its message
        if isinstance(chat, dict) and "id" in chat:
            return chat["id"]
        sender = body.get("from")
        if isinstance(sender, dict) and "id" in sender:
            return sender["id"]
        return ("update", kind, update.get("update_id"))
    return ("update", update.get("update_id"))


async def post(
    session: aiohttp.ClientSession, hook: Webhook, update: dict[str, Any], timeout: float
) -> tuple[int | None, str | None]:
    """One delivery: (the HTTP status, or None when no answer came; the error, as
    getWebhookInfo words it, or None for a 2xx). The answer's body is not looked at."""
    headers = {"Content-Type": "application/json"}
    if hook.secret is not None:
        headers[SECRET_HEADER] = hook.secret  # exactly as set
    try:
        async with session.post(
            hook.url,
            json=update,
            headers=headers,
            allow_redirects=False,  # Telegram does not follow them: a 3xx is a wrong answer
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            await response.read()
            status = response.status
    except TimeoutError:
        return None, "Read timeout expired"
    except aiohttp.ClientConnectorError:
        return None, "Connection refused"
    except aiohttp.ClientError as exc:
        return None, f"Connection error: {type(exc).__name__}"
    if 200 <= status < 300:
        return status, None
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return status, f"Wrong response from the webhook: {status} {phrase}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
