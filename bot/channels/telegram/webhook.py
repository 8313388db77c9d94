"""Telegram's webhook: updates posted to this instance's server at the path of `WEBHOOK_URL`.

Each call must carry the secret given in setWebhook (`X-Telegram-Bot-Api-Secret-Token`); a call
without it gets 401, with a wrong one 403, and nothing is stored. An update is stored in the inbox
before the call is answered 200, so an instance that dies after answering loses nothing; one it
cannot store gets a 5xx and Telegram sends it again; one stored before gets 200 and changes
nothing. Handling runs after the answer, in the update's lane (`DurablePoller.take`)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from aiohttp import web

from bot.channels.telegram.poller import DurablePoller
from bot.durable import passing

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class Webhook:
    def __init__(
        self, path: str, secret: str, poller: DurablePoller, accepting: Callable[[], bool]
    ) -> None:
        """`accepting`: False once the instance is stopping (calls get 503: sent again, to
        another instance)."""
        self.path = path
        self._secret = secret.encode()
        self.poller = poller
        self.accepting = accepting

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self.path, self._update)

    async def _update(self, request: web.Request) -> web.StreamResponse:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return web.Response(status=401, text="no secret token")
        if not hmac.compare_digest(given.encode(), self._secret):
            logger.warning("A webhook call with a wrong secret token was refused")
            return web.Response(status=403, text="wrong secret token")
        if not self.accepting():
            return web.Response(status=503, text="stopping", headers={"Retry-After": "1"})
        try:
            raw = await request.json()
        except ValueError:
            return web.Response(status=400, text="not JSON")
        if not isinstance(raw, dict) or not isinstance(raw.get("update_id"), int):
            return web.Response(status=400, text="not an update")
        try:
            await self.poller.take(raw)
        except Exception as exc:  # not stored: Telegram sends it again
            if passing(exc) or isinstance(exc, TimeoutError):  # a lock held elsewhere too
                logger.warning("Update %s not stored yet (%r)", raw["update_id"], exc)
                return web.Response(status=503, text="busy", headers={"Retry-After": "1"})
            logger.exception("Update %s could not be stored", raw["update_id"])
            return web.Response(status=500, text="not stored")
        return web.Response(status=200)
