"""The manager's dashboard, its JSON calls end to end: a customer files a complaint in Telegram,
the manager's Mini App data gets a session, and the backlog lists the ticket; anyone else, and
forged or stale data, get 403 with the reason."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.standin import BotApiStandIn
from tests.conftest import MANAGER_ID
from tests.e2e.people import file_complaint


def init_data(token: str, user_id: int, language: str, signed_at: float | None = None) -> str:
    """What Telegram hands a Mini App: the fields and their hash, keyed with
    HMAC-SHA256("WebAppData", the bot's token), over the sorted `key=value` lines."""
    user = {"id": user_id, "first_name": "陈店长", "language_code": language}
    fields = {
        "auth_date": str(int(signed_at if signed_at is not None else time.time())),
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps(user, separators=(",", ":"), ensure_ascii=False),
    }
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


async def sign_in(http: aiohttp.ClientSession, base: str, data: str) -> tuple[int, Any]:
    async with http.post(f"{base}/dashboard/api/session", data=data.encode()) as answer:
        return answer.status, await answer.json()


async def test_a_manager_sees_the_backlog_and_no_one_else_does(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """A manager's initData gets a token and the backlog lists the new ticket; a non-manager,
    tampered or day-old data and a missing or altered token get 403 saying why."""
    bot = await start_bot()
    await file_complaint(api, api.person(2101, "小明", "zh"))
    base = bot.app.http.url
    async with aiohttp.ClientSession() as http:
        status, session = await sign_in(http, base, init_data(api.token, MANAGER_ID, "zh"))
        assert status == 200 and session["language"] == "zh"
        headers = {"Authorization": f"Bearer {session['token']}"}
        async with http.get(f"{base}/dashboard/api/backlog", headers=headers) as answer:
            assert answer.status == 200
            assert answer.headers["Cache-Control"] == "no-store"  # one manager's, as of now
            backlog = await answer.json()
        [ticket] = backlog["tickets"]
        assert ticket["reference"] == "T-000001" and ticket["category_label"] == "花材质量"
        assert ticket["taken_by"] == "" and not ticket["overdue"]
        assert ticket["next_deadline_kind"] == "first_response" and ticket["age_hours"] < 1

        status, refused = await sign_in(http, base, init_data(api.token, 3102, "en"))
        assert status == 403 and refused["error"] == "not_manager"
        assert "managers only" in refused["message"]

        tampered = init_data(api.token, 3102, "zh").replace("3102", str(MANAGER_ID))
        status, refused = await sign_in(http, base, tampered)
        assert status == 403 and refused["error"] == "bad_hash"
        assert "身份" in refused["message"]

        stale = init_data(api.token, MANAGER_ID, "zh", signed_at=time.time() - 25 * 3600)
        status, refused = await sign_in(http, base, stale)
        assert status == 403 and refused["error"] == "expired"
        assert "已过期" in refused["message"]

        async with http.get(f"{base}/dashboard/api/backlog") as answer:
            assert answer.status == 403
            assert (await answer.json())["error"] == "no_token"
        forged = {"Authorization": f"Bearer {session['token']}x"}
        async with http.get(f"{base}/dashboard/api/backlog", headers=forged) as answer:
            assert answer.status == 403
            assert (await answer.json())["error"] == "bad_token"


async def test_a_manager_taken_off_the_list_sees_nothing_more(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """A session outlives a restart (its key comes from the bot's token), but not the manager's
    place: once the desk restarts without them in MANAGER_IDS, their open page's next call gets
    403 not_manager; a manager still on the list reads on with the same kind of token."""
    bot = await start_bot(manager_ids=f"{MANAGER_ID},4343")
    async with aiohttp.ClientSession() as http:
        _, leaving = await sign_in(http, bot.app.http.url, init_data(api.token, 4343, "en"))
        _, staying = await sign_in(http, bot.app.http.url, init_data(api.token, MANAGER_ID, "zh"))
        await bot.stop()
        bot = await start_bot(manager_ids=str(MANAGER_ID))
        base = bot.app.http.url
        for session, status in ((staying, 200), (leaving, 403)):
            headers = {"Authorization": f"Bearer {session['token']}"}
            async with http.get(f"{base}/dashboard/api/backlog", headers=headers) as answer:
                assert answer.status == status
                if status == 403:
                    refused = await answer.json()
                    assert refused["error"] == "not_manager"
                    assert "managers only" in refused["message"]  # in their language
