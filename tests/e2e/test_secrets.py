"""Secrets in URLs stay out of the desk's logs and records, end to end: the WeCom group robot's
webhook and the shop's order endpoint both fail while a complaint comes in."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.config import BUNDLED_POLICY
from bot.standin import BotApiStandIn
from bot.standin.wecom import WeComStandIn
from storage.db import create_engine
from storage.models import OutboxRow
from tests.e2e.people import file_complaint
from tests.serving import serving

ROBOT_KEY = "robot-key-e2e-6d1f"
ENDPOINT_KEY = "endpoint-key-e2e-38aa"
ENDPOINT_PASSWORD = "endpoint-password-e2e-c90e"
SECRETS = (ROBOT_KEY, ENDPOINT_KEY, ENDPOINT_PASSWORD)


@pytest.fixture
async def shop_down() -> AsyncIterator[str]:
    """The shop's order endpoint, answering 500 to everything; its URL holds a password and a
    key."""

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="<html>Internal Server Error</html>")

    app = web.Application()
    app.router.add_get("/api/orders/{number}", fail)
    async with serving(app) as url:
        yield (
            url.replace("http://", f"http://desk:{ENDPOINT_PASSWORD}@")
            + f"/api/orders/{{order_number}}?key={ENDPOINT_KEY}"
        )


async def mirror_rows(database_url: str) -> list[Any]:
    """The outbox rows meant for the WeCom group, as the desk recorded them."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as db:
            query = select(OutboxRow.outcome, OutboxRow.detail).where(
                OutboxRow.channel == "mirror"
            )
            return list((await db.execute(query)).all())
    finally:
        await engine.dispose()


async def test_a_failing_robot_and_order_endpoint_leave_their_secrets_out_of_logs_and_rows(
    api: BotApiStandIn,
    wecom: WeComStandIn,
    start_bot: Any,
    shop_down: str,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The robot's webhook answers 500 for a while (the copy waits, then goes), and the order
    endpoint answers 500: the log says HTTP 500, and neither the outbox nor any log line holds
    the webhook's key or the endpoint's password or key."""
    caplog.set_level(logging.INFO)
    down = wecom.inject_http("webhook/send", 500, count=4)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        BUNDLED_POLICY.read_text(encoding="utf-8") + f'\norders:\n  endpoint: "{shop_down}"\n',
        encoding="utf-8",
    )
    bot = await start_bot(
        shop_policy=str(policy),
        wecom_group_webhook=f"{wecom.base_url}/cgi-bin/webhook/send?key={ROBOT_KEY}",
    )
    bot.app.sender.retry_first = bot.app.sender.retry_most = 0.05  # seconds, not minutes
    customer = api.person(8301, "小林", "zh")
    await file_complaint(api, customer, photos=())
    await bot.settled()

    assert down.count == 0
    [(outcome, detail)] = await mirror_rows(database_url)
    assert outcome == "sent" and not detail  # it waited out the 500s
    logged = "\n".join(
        [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    )
    assert "The order endpoint did not answer" in logged and "HTTP 500" in logged
    assert not any(secret in logged for secret in SECRETS)
