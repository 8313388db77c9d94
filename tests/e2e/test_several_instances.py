"""An instance set up to share its desk with others (REDIS_URL): it claims each customer's
lane before it answers, and leaves nothing claimed when it stops."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.standin import BotApiStandIn
from storage.db import create_engine
from storage.models import LeaseRow
from tests.conftest import REDIS_HOST, REDIS_PORT, needs_redis
from tests.e2e.people import said


@needs_redis
async def test_an_instance_among_several_answers_and_leaves_no_claim_when_it_stops(
    api: BotApiStandIn, start_bot: Any, database_url: str
) -> None:
    """A customer writes to one of several instances: the answer comes as from one alone, and
    once the instance has stopped no lane is left claimed by it."""
    bot = await start_bot(redis_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/0", instance_name="a")
    claims = bot.app.sender.claims
    assert claims is not None and claims.holder.startswith("a:")  # the name and the process
    customer = api.person(4101, "小周", "zh")
    customer.send("你好,我的花还没到")
    await said(api, customer, "非常抱歉")
    await bot.stop()

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            left = list(await connection.execute(select(LeaseRow.name, LeaseRow.holder)))
    finally:
        await engine.dispose()
    assert left == []
