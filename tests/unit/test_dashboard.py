"""The dashboard's door: PUBLIC_URL, Telegram's `initData` checked as Telegram documents it, and
the short-lived session token the page carries afterwards."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from bot.channels.telegram.webapp import InitDataRefused, MiniAppSignIn, check_init_data
from bot.channels.wecom.app_client import SignedIn
from bot.channels.wecom.signin import WeComSignIn
from bot.config import SettingsError, load_settings
from bot.dashboard import (
    Dashboard,
    Refused,
    SessionTokens,
    SignInUnavailable,
    Visitor,
    derive_key,
)
from tests.unit import fakes

TOKEN = "123456789:AAE-test-token"
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def init_data(
    token: str = TOKEN,
    signed_at: datetime = NOW,
    user: dict[str, Any] | None = None,
    **extra: str,
) -> str:
    """`initData` as Telegram makes it: the fields, and the hash over their sorted lines keyed
    with HMAC-SHA256("WebAppData", the bot's token)."""
    fields = {"auth_date": str(int(signed_at.timestamp())), "query_id": "AAHdF6IQ", **extra}
    if user is not None:
        fields["user"] = json.dumps(user, separators=(",", ":"), ensure_ascii=False)
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


MANAGER = {"id": 42, "first_name": "陈", "language_code": "zh-hans"}


def test_genuine_init_data_names_its_user() -> None:
    """Data signed with the bot's token names the user who opened the page."""
    user = check_init_data(init_data(user=MANAGER, signature="abc"), TOKEN, NOW)
    assert (user.id, user.first_name, user.language_code) == (42, "陈", "zh-hans")


def test_a_tampered_field_is_refused() -> None:
    """Another user id put in after signing does not match the hash."""
    data = init_data(user=MANAGER).replace("%3A42%2C", "%3A43%2C")
    assert "%3A43%2C" in data
    with pytest.raises(InitDataRefused) as refused:
        check_init_data(data, TOKEN, NOW)
    assert refused.value.reason == "bad_hash"


def test_another_bots_data_is_refused() -> None:
    """Data signed with another bot's token is not this bot's."""
    with pytest.raises(InitDataRefused) as refused:
        check_init_data(init_data(token="987654321:OTHER", user=MANAGER), TOKEN, NOW)
    assert refused.value.reason == "bad_hash"


def test_data_without_a_hash_is_refused() -> None:
    """No hash at all proves nothing."""
    data = "&".join(p for p in init_data(user=MANAGER).split("&") if not p.startswith("hash="))
    with pytest.raises(InitDataRefused) as refused:
        check_init_data(data, TOKEN, NOW)
    assert refused.value.reason == "bad_hash"


def test_old_data_is_refused_in_its_users_language() -> None:
    """An auth_date more than 24 hours old is expired; a day's data to the second still counts."""
    check_init_data(init_data(signed_at=NOW - timedelta(hours=24), user=MANAGER), TOKEN, NOW)
    old = init_data(signed_at=NOW - timedelta(hours=24, seconds=1), user=MANAGER)
    with pytest.raises(InitDataRefused) as refused:
        check_init_data(old, TOKEN, NOW)
    assert (refused.value.reason, refused.value.language_code) == ("expired", "zh-hans")


def test_data_naming_no_user_is_refused() -> None:
    """Genuine data that names nobody opens nothing."""
    with pytest.raises(InitDataRefused) as refused:
        check_init_data(init_data(), TOKEN, NOW)
    assert refused.value.reason == "no_user"


async def test_the_sign_in_admits_only_managers() -> None:
    """A manager is admitted in their language; anyone else is refused as not a manager."""

    async def is_manager(user_id: int) -> bool:
        return user_id == 42

    sign_in = MiniAppSignIn(TOKEN, is_manager, "zh", lambda: NOW)
    assert await sign_in(init_data(user=MANAGER)) == Visitor("42", "zh")
    staff = {"id": 7, "first_name": "Li", "language_code": "en"}
    with pytest.raises(Refused) as refused:
        await sign_in(init_data(user=staff))
    assert (refused.value.reason, refused.value.language) == ("not_manager", "en")


def test_a_token_names_its_manager_for_an_hour() -> None:
    """The session token reads back as its manager until it expires, then is refused."""
    tokens = SessionTokens(derive_key(TOKEN))
    token = tokens.issue(Visitor("42", "en"), NOW)
    assert tokens.read(token, NOW + timedelta(minutes=59)) == Visitor("42", "en")
    with pytest.raises(Refused) as refused:
        tokens.read(token, NOW + timedelta(hours=1))
    assert (refused.value.reason, refused.value.language) == ("expired_token", "en")


def test_an_altered_or_foreign_token_is_refused() -> None:
    """A token with its payload changed, or signed with another key, is not the desk's."""
    tokens = SessionTokens(derive_key(TOKEN))
    body, mac = tokens.issue(Visitor("42", "en"), NOW).split(".")
    forged = tokens.issue(Visitor("7", "en"), NOW).split(".")[0]
    foreign = SessionTokens(derive_key("987654321:OTHER")).issue(Visitor("42", "en"), NOW)
    for token in (f"{forged}.{mac}", foreign, body, "", "x.y"):
        with pytest.raises(Refused) as refused:
            tokens.read(token, NOW)
        assert refused.value.reason == "bad_token"


def settings(**values: Any) -> Any:
    return load_settings(bot_token=TOKEN, **values, _env_file=None)


def test_public_url_defaults_to_the_webhooks_origin() -> None:
    """PUBLIC_URL given is kept (no trailing slash); absent, it is WEBHOOK_URL's origin."""
    assert settings(public_url="https://desk.example.com/").public_url == (
        "https://desk.example.com"
    )
    hooked = settings(webhook_url="https://desk.example.com:8443/telegram", webhook_secret="s")
    assert hooked.public_url == "https://desk.example.com:8443"
    assert settings().public_url is None


@pytest.mark.parametrize("url", ["http://desk.example.com", "ftp://desk.example.com", "desk"])
def test_public_url_must_be_https_off_loopback(url: str) -> None:
    """Plain http:// only on a loopback address; anything else stops the start, named."""
    assert settings(public_url="http://127.0.0.1:8080").public_url == "http://127.0.0.1:8080"
    with pytest.raises(SettingsError, match="PUBLIC_URL is malformed"):
        settings(public_url=url)


async def test_forged_data_is_refused_in_the_language_it_claims() -> None:
    """The refusal of data whose hash does not match is worded in its user's language (only
    the words: nothing of it is believed); with no user, in the desk's."""

    async def is_manager(user_id: int) -> bool:
        raise AssertionError("nobody is looked up before the hash matches")

    sign_in = MiniAppSignIn(TOKEN, is_manager, "zh", lambda: NOW)
    english = {"id": 42, "first_name": "Anna", "language_code": "en"}
    for data, language in (
        (init_data(token="another bot's", user=english), "en"),
        (init_data(token="another bot's", user=MANAGER), "zh"),
        (init_data(token="another bot's"), "zh"),
        ("user=%7B%22id%22", "zh"),
    ):
        with pytest.raises(Refused) as refused:
            await sign_in(data)
        assert (refused.value.reason, refused.value.language) == ("bad_hash", language)


async def test_the_sign_in_reads_no_more_than_an_init_data_can_be() -> None:
    """A sign-in's body longer than 16 KiB (said in its header, or sent in chunks) is refused
    without the messenger being asked; a WeCom code that is not one is not sent to WeCom."""
    asked: list[str] = []

    async def telegram(data: str) -> Visitor:
        asked.append(data)
        return Visitor("42", "zh")

    async def wecom_asked(code: str) -> SignedIn:
        asked.append(code)
        return SignedIn("boss")

    client: Any = SimpleNamespace(signed_in=wecom_asked)
    wecom = WeComSignIn(client, lambda userid: True, "zh")
    sign_ins = {"telegram": telegram, "wecom": wecom}
    tokens = SessionTokens(derive_key(TOKEN))
    no_database: Any = None  # a sign-in reads none
    dashboard = Dashboard(fakes.desk(), no_database, lambda: NOW, sign_ins, tokens)
    app = web.Application()
    dashboard.add_routes(app)
    async with TestServer(app) as server, ClientSession() as http:
        url = str(server.make_url("/dashboard/api/session"))

        async def chunks() -> Any:
            for _ in range(20):
                yield b"x" * 1024

        for body in (b"x" * (16 * 1024 + 1), chunks()):
            async with http.post(url, data=body) as answer:
                assert answer.status == 403
                assert (await answer.json())["error"] == "bad_hash"
        async with http.post(url + "?via=wecom", data="<script>") as answer:
            assert answer.status == 403 and (await answer.json())["error"] == "bad_code"
        assert asked == []
        async with http.post(url, data=b"x" * (16 * 1024)) as answer:
            assert answer.status == 200  # at the limit: the messenger is asked
        async with http.post(url + "?via=wecom", data="Qm3v_x-9aZ") as answer:
            assert answer.status == 200  # a code's shape: WeCom is asked
        assert len(asked) == 2 and asked[-1] == "Qm3v_x-9aZ"


async def test_a_flood_of_wecom_codes_does_not_spend_the_apps_calls() -> None:
    """Past 60 codes within a minute, WeCom is not asked (503: try again shortly), so a flood
    of posted codes cannot use up the app's calls the real sign-ins need; a minute on, it is
    asked again."""
    asked: list[str] = []

    async def signed_in(code: str) -> SignedIn:
        asked.append(code)
        return SignedIn("boss")

    moment = [0.0]
    client: Any = SimpleNamespace(signed_in=signed_in)
    wecom = WeComSignIn(client, lambda userid: True, "zh", clock=lambda: moment[0])
    for n in range(60):
        assert await wecom(f"code{n}") == Visitor("boss", "zh", "wecom")
    with pytest.raises(SignInUnavailable):
        await wecom("code60")
    assert len(asked) == 60
    moment[0] = 60.0
    assert await wecom("code61") == Visitor("boss", "zh", "wecom")
    assert asked[-1] == "code61"


def test_wecoms_domain_proof_is_the_file_wecom_gave(tmp_path: Path) -> None:
    """WECOM_VERIFY_FILE names WeCom's WW_verify_….txt, present and a few bytes; another name,
    a missing file or a large one stops the start, named."""
    proof = tmp_path / "WW_verify_Qm3vX9aZ.txt"
    proof.write_text("Qm3vX9aZ")
    assert settings(wecom_verify_file=str(proof)).wecom_verify_file == proof
    other = tmp_path / "index.html"
    other.write_text("<html>")
    large = tmp_path / "WW_verify_Large.txt"
    large.write_bytes(b"x" * 2048)
    for given in (other, tmp_path / "WW_verify_Missing.txt", large):
        with pytest.raises(SettingsError, match="WECOM_VERIFY_FILE"):
            settings(wecom_verify_file=str(given))
