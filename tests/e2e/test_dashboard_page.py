"""The manager's dashboard page, as a manager sees it: the desk serves the page, headless
Chromium (driven by Playwright) opens it the way Telegram opens a Mini App, with the manager's
`initData` in the URL's fragment, and it shows the heat map, the backlog and a ticket's timeline;
anyone else sees the refusal and no data. The desk's clock is pinned where a test counts weeks
or months (the shop's calendar, in Asia/Shanghai), and the browser is put in another zone, so
that what the page shows is the shop's calendar and clock, never the phone's. The browser tests
need a Chromium (Debian's `chromium`; .ci/run installs it) and are skipped, saying so, where
there is none."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from playwright.async_api import Browser, Page, Request, async_playwright, expect

from bot.standin import BotApiStandIn
from bot.standin.wecom import WeComStandIn
from tests.conftest import MANAGER_ID, STAFF_CHAT
from tests.e2e.people import file_complaint, in_group
from tests.e2e.test_dashboard import init_data, sign_in
from tests.e2e.test_dashboard_figures import SHOP, ShopClock
from tests.e2e.test_dashboard_wecom import card_for, free_port
from tests.e2e.test_wecom_staff import complaint_filed, start_all_wecom


def find_chromium() -> str | None:
    """The Chromium to drive (as .ci/run looks for it): DESK_CHROMIUM, else Debian's, else one
    on the PATH."""
    names = (os.environ.get("DESK_CHROMIUM", ""), "/usr/bin/chromium", "chromium")
    for name in (*names, "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium to drive (looked for DESK_CHROMIUM, /usr/bin/chromium, chromium, "
    "chromium-browser, google-chrome): `apt-get install chromium` (.ci/run does)",
)

PHONE = {"width": 380, "height": 820}  # a Mini App on a phone
DESKTOP = {"width": 1280, "height": 900}
# what a Telegram client in its light theme hands a Mini App
LIGHT_THEME = {
    "bg_color": "#ffffff",
    "text_color": "#000000",
    "hint_color": "#707579",
    "link_color": "#3390ec",
    "button_color": "#3390ec",
    "button_text_color": "#ffffff",
    "secondary_bg_color": "#f4f4f5",
}
DARK_THEME = {
    "bg_color": "#212121",
    "text_color": "#ffffff",
    "hint_color": "#aaaaaa",
    "link_color": "#8774e1",
    "button_color": "#8774e1",
    "button_text_color": "#ffffff",
    "secondary_bg_color": "#0f0f0f",
}
# the shop's orders, as the manager sends them with /orders: the stores come from here
ORDERS = (
    "订单编号,商品名称,批次号,送达时间,门店,区域,备注\n"
    "FS2026112301,红玫瑰花束 33 支,B20261120,2026-11-23 10:00,静安店,上海,\n"
    "FS2026112302,向日葵花篮,B20261121,2026-11-23 11:00,徐汇店,上海,\n"
    "FS2026112303,白百合花束,B20261121,2026-11-23 12:00,静安店,上海,\n"
)
# what Telegram's mobile apps put in a Mini App's webview: the bridge the page posts events to
TELEGRAM_APP_BRIDGE = """
window.toldTelegram = [];
window.TelegramWebviewProxy = {postEvent: (kind, data) => window.toldTelegram.push(kind)};
"""
# where the screenshots are kept besides the test's own folder: DESK_SCREENSHOTS names a folder
# (README's are made so: DESK_SCREENSHOTS=docs ./desk test tests/e2e/test_dashboard_page.py)
SCREENSHOTS = os.environ.get("DESK_SCREENSHOTS")
KEPT_SCREENSHOTS = {
    "phone": "dashboard-zh.png",
    "desktop": "dashboard-desktop-en.png",
    "ticket": "dashboard-ticket-zh.png",
}
# the desk's clock for the tests that count weeks and months: a Tuesday, 20 minutes into
# December in the shop's zone, still the 30th of November in UTC and everywhere west of it
SHOP_MORNING = datetime(2026, 12, 1, 0, 20, tzinfo=SHOP)
FAR_AWAY = "America/Los_Angeles"  # the manager's phone, on a trip: the 30th of November


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The page reads only the JSON calls (their own tests run on both databases): SQLite."""
    return sqlite_url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium, the machine's own (Playwright downloads no browser)."""
    assert CHROMIUM is not None, "a test that drives the browser is marked @needs_chromium"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        await chromium.close()


def mini_app_url(base: str, data: str, theme: dict[str, str] | None = None) -> str:
    """The page's URL as Telegram opens a Mini App: the initData (urlencoded once more) and the
    theme in the fragment."""
    fragment = f"tgWebAppData={quote(data, safe='')}&tgWebAppVersion=8.0&tgWebAppPlatform=android"
    if theme is not None:
        fragment += f"&tgWebAppThemeParams={quote(json.dumps(theme), safe='')}"
    return f"{base}/dashboard#{fragment}"


@dataclass
class Opened:
    """A page opened in a fresh browser: what it asked the network for, what went wrong in it
    (script errors, refused loads)."""

    page: Page
    requests: list[Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def open_page(
    browser: Browser,
    url: str,
    viewport: dict[str, int] = PHONE,
    locale: str = "zh-CN",
    init_script: str | None = None,
    timezone: str = "Asia/Shanghai",
    color_scheme: Literal["light", "dark", "no-preference"] = "light",
) -> Opened:
    """A fresh browser (no storage) opens the URL, on a phone or a desktop, its clock in
    `timezone` and its system in the light or dark `color_scheme`; `init_script` runs before
    the page's own (as a messenger's webview sets up its bridge)."""
    phone = viewport["width"] < 600
    context = await browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
        locale=locale,
        timezone_id=timezone,
        color_scheme=color_scheme,
    )
    if init_script is not None:
        await context.add_init_script(init_script)
    opened = Opened(await context.new_page())
    opened.page.on("request", lambda request: opened.requests.append(request))
    opened.page.on("pageerror", lambda error: opened.problems.append(str(error)))
    opened.page.on(
        "console",
        lambda line: opened.problems.append(line.text) if line.type == "error" else None,
    )
    opened.page.on(
        "response",
        lambda answer: (
            opened.problems.append(f"{answer.status} {answer.url}")
            if answer.status >= 400 and "/dashboard/api/session" not in answer.url
            else None
        ),
    )
    await opened.page.goto(url)
    return opened


def week_of(moment: datetime, zone: str = "Asia/Shanghai") -> str:
    """The Monday of the moment's week in the shop's zone, as the heat map names its columns."""
    day = moment.astimezone(ZoneInfo(zone)).date()
    return (day - timedelta(days=day.weekday())).isoformat()


def on_the_shops_clock(at: str, today: date | None = None) -> str:
    """A moment as the page says it in Chinese on the shop's clock: `12月1日 00:20`, or the
    time alone (`00:20`) on `today`, the shop's day."""
    moment = datetime.fromisoformat(at).astimezone(SHOP)
    if moment.date() == today:
        return f"{moment:%H:%M}"
    return f"{moment.month}月{moment.day}日 {moment:%H:%M}"


async def read_as_manager(api: BotApiStandIn, base: str, path: str, signed_at: float) -> Any:
    """What the desk's JSON call answers the manager (to compare the page with)."""
    async with aiohttp.ClientSession() as http:
        status, session = await sign_in(
            http, base, init_data(api.token, MANAGER_ID, "zh", signed_at)
        )
        assert status == 200
        headers = {"Authorization": f"Bearer {session['token']}"}
        async with http.get(f"{base}/dashboard/api/{path}", headers=headers) as answer:
            assert answer.status == 200
            return await answer.json()


async def test_the_page_is_served_plain_with_its_own_assets(
    api: BotApiStandIn, start_bot: Any
) -> None:
    """`/dashboard` is HTML with no data and only relative URLs; its script, style and uPlot come
    from `/dashboard/static/` with their content types, cached by version; nothing else there
    is served."""
    bot = await start_bot()
    await file_complaint(api, api.person(2201, "小明", "zh"))
    base = bot.app.http.url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/dashboard") as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
            assert answer.headers["Cache-Control"] == "no-cache"
            policy = answer.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy
            assert "frame-ancestors 'self' https://web.telegram.org" in policy  # no other site
            page = await answer.text()
            etag = answer.headers["ETag"]
        assert "T-000001" not in page and "小明" not in page
        links = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert links[0] == "data:,"  # no favicon asked for
        links = links[1:]
        assert len(links) == 4 and all(link.startswith("dashboard/static/") for link in links)
        async with http.get(f"{base}/dashboard", headers={"If-None-Match": etag}) as answer:
            assert answer.status == 304

        kinds = {".js": "text/javascript", ".css": "text/css"}
        for link in links:
            async with http.get(f"{base}/{link}") as answer:
                assert answer.status == 200, link
                assert answer.content_type == kinds[Path(link.split("?")[0]).suffix]
                assert answer.charset == "utf-8"
                assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                assert len(await answer.read()) > 500
            unversioned = link.split("?")[0]
            async with http.get(f"{base}/{unversioned}") as answer:
                assert answer.status == 200 and answer.headers["Cache-Control"] == "no-cache"
        assert any("uPlot.iife.min.js" in link for link in links)

        for path in (
            "/dashboard/static/../dashboard.py",
            "/dashboard/static/%2e%2e/%2e%2e/dashboard.py",
            "/dashboard/static/..%2f__init__.py",
            "/dashboard/static/__init__.py",
            "/dashboard/static/index.html",
            "/dashboard/static//etc/passwd",
            "/dashboard/static/vendor/uplot/../../__init__.py",
        ):
            async with http.get(f"{base}{path}") as answer:
                assert answer.status == 404, path
                assert "import" not in await answer.text()


@needs_chromium
async def test_a_manager_sees_the_heat_map_the_backlog_and_a_timeline(
    api: BotApiStandIn, start_bot: Any, browser: Browser, tmp_path: Path
) -> None:
    """Complaints filed in Telegram show on the manager's Mini App: the heat map counts them by
    category and week and by store, the backlog lists them, the repeats name the product and
    the cause staff recorded, and a tap on one opens its timeline with the customer's words, as
    text even where they look like HTML."""
    clock = ShopClock(SHOP_MORNING)
    bot = await start_bot(clock=clock)
    api.files["orders"] = ORDERS.encode()
    api.person(MANAGER_ID, "陈店长", "zh").say_in_group(
        STAFF_CHAT,
        caption="/orders",
        document={"file_id": "orders", "file_unique_id": "u-o", "file_name": "订单.csv"},
    )
    await in_group(api, "已导入")
    card = await file_complaint(api, api.person(2301, "小明", "zh"))
    staff = api.person(3301, "小王", "zh")
    staff.say_in_group(
        STAFF_CHAT, "您好,非常抱歉!我们马上核实,今天给您答复。", reply_to=card.message_id
    )
    await api.wait_for(lambda s: s.message_id == card.message_id and "负责人:小王" in s.text)
    staff.say_in_group(STAFF_CHAT, "/cause 产品 供应链", reply_to=card.message_id)
    await in_group(api, "小王 记录了 产品缺陷、供应链")
    await file_complaint(
        api,
        api.person(2302, "<b>x</b>", "zh"),
        order="FS2026112302",
        story="花束<i>压坏</i>了,<img src=x onerror=alert(1)>",
        photos=(),
    )
    await file_complaint(
        api,
        api.person(2303, "王女士", "zh"),
        category="配送延误",
        order="FS2026112303",
        story="说好中午送到,下午三点还没到",
        photos=(),
    )
    base = bot.app.http.url
    # the weeks and months as the desk's clock stood when the complaints came in (the same
    # moment, whatever the real time: a Sunday 23:59 run counts the same weeks)
    this_week, last_week = week_of(SHOP_MORNING), week_of(SHOP_MORNING - timedelta(days=7))
    signed_at = clock().timestamp()

    # the manager's phone is in Los Angeles, where it is still the 30th of November
    opened = await open_page(
        browser,
        mini_app_url(base, init_data(api.token, MANAGER_ID, "zh", signed_at), LIGHT_THEME),
        timezone=FAR_AWAY,
    )
    page = opened.page
    rows = page.locator("#backlog-table tbody tr")
    await expect(rows).to_have_count(3)
    # the soonest deadline first: the two not yet answered, then the one 小王 answered
    await expect(rows.locator("td.reference .link")).to_have_text(
        ["T-000002", "T-000003", "T-000001"]
    )
    await expect(rows.filter(has_text="T-000001")).to_contain_text("小王")  # who has it
    await expect(rows.filter(has_text="T-000002")).to_contain_text("未认领")
    await expect(rows.filter(has_text="T-000003")).to_contain_text("配送延误")
    await expect(page.locator("#backlog-table .badge")).to_have_count(0)  # nothing overdue yet
    await expect(page.locator("#backlog h2")).to_have_text("未结投诉")
    await expect(rows.first.locator("td.age")).to_have_attribute("data-label", "已等待")
    # each next deadline, and when it falls on the shop's clock (today: the time alone)
    backlog = await read_as_manager(api, base, "backlog", clock().timestamp())
    for ticket in backlog["tickets"]:
        at = on_the_shops_clock(ticket["next_deadline"], today=SHOP_MORNING.date())
        deadline = rows.filter(has_text=ticket["reference"]).locator("td.deadline")
        await expect(deadline.locator("time")).to_have_text(f"（{at}）")
    assert "（00:3" in await rows.first.locator("td.deadline").inner_text()  # 00:20 + 10 min

    # the shop's months, as its clock has them: December has begun, November is the last
    tabs = page.locator(".tab")
    await expect(tabs).to_have_text(["近 7 天", "近 30 天", "11月", "12月"])
    await expect(tabs.nth(2)).to_have_attribute("title", "上个月：2026年11月")
    await expect(tabs.nth(3)).to_have_attribute("title", "本月：2026年12月（截至现在）")

    heat = page.locator("#heat-table")
    await expect(heat).to_be_visible()
    quality = heat.locator("tbody tr", has=page.locator("th", has_text="花材质量"))
    late = heat.locator("tbody tr", has=page.locator("th", has_text="配送延误"))
    await expect(quality.locator(f'td[data-column="{this_week}"]')).to_have_text("2")
    await expect(late.locator(f'td[data-column="{this_week}"]')).to_have_text("1")
    # the 7 days from Tuesday to Tuesday: neither week is whole, and the header says so
    weeks = heat.locator("thead th[data-column]")
    await expect(weeks).to_have_text(["11月23日部分", "11月30日部分"])
    await expect(weeks.nth(0)).to_have_attribute(
        "title", "这一周只有 11月24日–11月29日 在所选时间范围内"
    )
    await expect(weeks.nth(1)).to_have_attribute(
        "title", "这一周只有 11月30日–12月1日 在所选时间范围内"
    )
    await expect(page.locator("#heat .part-note")).to_contain_text("标“部分”的周")
    await expect(page.locator('#overview [data-figure="total"] .value')).to_have_text("3")
    await expect(page.locator('#overview [data-figure="open"] .value')).to_have_text("3")
    await expect(page.locator('#overview [data-figure="open"] .label')).to_have_text("未结投诉")
    await expect(page.locator('#overview [data-figure="on-time"] .label')).to_have_text(
        "首次回复按时率"
    )
    stores = page.locator("#stores-table")
    jingan = stores.locator("tbody tr", has=page.locator("th", has_text="静安店"))
    xuhui = stores.locator("tbody tr", has=page.locator("th", has_text="徐汇店"))
    await expect(jingan.locator('td[data-column="quality"]')).to_have_text("1")
    await expect(jingan.locator('td[data-column="late"]')).to_have_text("1")
    await expect(xuhui.locator('td[data-column="quality"]')).to_have_text("1")
    await expect(xuhui.locator('td[data-column="late"]')).to_have_text("0")
    roses = page.locator("#repeat-products li", has_text="红玫瑰花束 33 支")
    await expect(roses.locator(".count")).to_have_text("1")
    top_batch = page.locator("#repeat-batches li").first  # two complaints: the top one
    await expect(top_batch.locator("span").first).to_have_text("B20261121")
    await expect(top_batch.locator(".count")).to_have_text("2")
    await expect(page.locator("#repeat-causes li")).to_contain_text(["产品缺陷"])
    await expect(page.locator("#on-time .note")).to_have_text(
        "按时：在 10 分钟内首次回复客户。"  # SLA_FIRST_RESPONSE, in words
    )
    await expect(page.locator("#on-time-chart canvas")).to_have_count(1)  # uPlot drew it
    await expect(page.locator("#on-time summary")).to_have_text("查看明细")
    await page.locator("#on-time summary").tap()  # the chart's figures, under it
    answered = page.locator("#on-time-table tbody tr").last
    await expect(answered.locator("th")).to_have_text("11月30日部分")
    await expect(answered.locator("td")).to_have_text(["1", "1", "100%"])
    # the fuller cell is the darker one (its colour says the count)
    darker = await quality.locator(f'td[data-column="{this_week}"]').evaluate(
        "cell => getComputedStyle(cell).backgroundColor"
    )
    lighter = await late.locator(f'td[data-column="{this_week}"]').evaluate(
        "cell => getComputedStyle(cell).backgroundColor"
    )
    assert darker != lighter

    phone_shot = tmp_path / "dashboard-phone-zh.png"
    await page.screenshot(path=str(phone_shot), full_page=True)
    async with page.expect_response(lambda answer: "period=30d" in answer.url) as month:
        await page.get_by_role("tab", name="近 30 天").tap()
    assert (await month.value).ok
    await expect(page.get_by_role("tab", name="近 30 天")).to_have_attribute(
        "aria-selected", "true"
    )
    await expect(quality.locator(f'td[data-column="{this_week}"]')).to_have_text("2")
    first = week_of(SHOP_MORNING - timedelta(days=30))  # Sunday the 1st: the week of the 26th
    count = (date.fromisoformat(this_week) - date.fromisoformat(first)).days // 7 + 1
    await expect(quality.locator("td")).to_have_count(count)  # a column for each week
    # only the first week (its Sunday alone) and the last are partial; the rest are whole
    await expect(heat.locator("thead th.part")).to_have_count(2)
    await expect(heat.locator(f'thead th[data-column="{first}"]')).to_have_attribute(
        "title", "这一周只有 11月1日 在所选时间范围内"
    )
    await expect(heat.locator(f'thead th[data-column="{last_week}"]')).to_have_text("11月23日")
    month_shot = tmp_path / "dashboard-phone-30d-zh.png"
    await page.screenshot(path=str(month_shot), full_page=True)

    async with page.expect_response(lambda answer: "period=2026-11" in answer.url) as november:
        await page.get_by_role("tab", name="11月").tap()
    assert (await november.value).ok
    await expect(page.locator("#heat .empty")).to_have_text("这段时间没有投诉。")
    await expect(page.locator('#overview [data-figure="total"] .value')).to_have_text("0")
    async with page.expect_response(lambda answer: "period=2026-12" in answer.url) as december:
        await page.get_by_role("tab", name="12月").tap()
    assert (await december.value).ok
    await expect(quality.locator(f'td[data-column="{this_week}"]')).to_have_text("2")
    await expect(heat.locator("thead th[data-column]")).to_have_attribute(
        "title", "这一周只有 12月1日 在所选时间范围内"
    )
    await page.get_by_role("tab", name="近 7 天").tap()
    await expect(heat.locator("thead th[data-column]")).to_have_count(2)

    await rows.filter(has_text="T-000002").tap()
    dialog = page.locator("dialog#ticket")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("#timeline")).to_contain_text("花束<i>压坏</i>了")
    await expect(dialog.locator(".facts")).to_contain_text("<b>x</b>")
    assert await dialog.locator("b, i, img").count() == 0  # text, never markup
    # each step at the time the shop's clock said (the 1st of December), not the phone's
    record = await read_as_manager(api, base, "tickets/T-000002", clock().timestamp())
    times = [on_the_shops_clock(entry["at"]) for entry in record["entries"]]
    assert times and all(at.startswith("12月1日 00:") for at in times)
    await expect(dialog.locator("#timeline time")).to_have_text(times)
    ticket_shot = tmp_path / "dashboard-ticket-zh.png"
    await page.screenshot(path=str(ticket_shot))
    await dialog.locator("button.back").tap()
    await expect(dialog).to_be_hidden()

    await rows.filter(has_text="T-000001").tap()
    await expect(dialog.locator("#timeline")).to_contain_text("花送到的时候一半都蔫了")
    await expect(dialog.locator("#timeline")).to_contain_text("我们马上核实")
    assert not opened.problems, opened.problems
    assert {request.url.split("/dashboard")[0] for request in opened.requests} == {base}

    # on a desktop, in English, in Telegram's light theme
    english = init_data(api.token, MANAGER_ID, "en", clock().timestamp())
    desk = (
        await open_page(browser, mini_app_url(base, english, LIGHT_THEME), DESKTOP, "en-US")
    ).page
    await expect(desk.locator("#heat-table")).to_be_visible()
    await expect(desk.locator("#backlog-table tbody tr")).to_have_count(3)
    await expect(desk.locator(".tab")).to_have_text(["7 days", "30 days", "Nov", "Dec"])
    await expect(desk.locator("#backlog h2")).to_have_text("Open complaints")
    await expect(desk.locator('#overview [data-figure="open"] .label')).to_have_text(
        "Open complaints"
    )
    await expect(desk.locator("#repeats h2")).to_have_text("Repeat problems")
    await expect(desk.locator("#on-time .note")).to_have_text(
        "On time: first answer within 10 minutes."
    )
    await expect(desk.locator("#backlog-table thead th")).to_have_text(
        ["Ticket", "Category", "Severity", "Who has it", "Age", "Next deadline"]
    )
    await expect(desk.locator("#heat-table thead th[data-column]")).to_have_text(
        ["23 Novpart", "30 Novpart"]
    )
    background = await desk.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(255, 255, 255)"  # Telegram's light theme
    desktop_shot = tmp_path / "dashboard-desktop-en.png"
    await desk.screenshot(path=str(desktop_shot), full_page=True)

    taken = {"phone": phone_shot, "desktop": desktop_shot, "ticket": ticket_shot}
    print("screenshots:", phone_shot, month_shot, ticket_shot, desktop_shot)
    if SCREENSHOTS:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        for name, shot in taken.items():
            shutil.copyfile(shot, os.path.join(SCREENSHOTS, KEPT_SCREENSHOTS[name]))


@needs_chromium
async def test_overdue_tickets_come_first_and_are_marked(
    api: BotApiStandIn, start_bot: Any, browser: Browser
) -> None:
    """A ticket whose first answer is late leads the backlog with a red "已超时" and says how
    late; one still in time says how long is left."""
    shift = [timedelta()]  # the desk's clock runs this far ahead of the real one

    def clock() -> datetime:
        return datetime.now(UTC) + shift[0]

    bot = await start_bot(clock=clock)
    await file_complaint(api, api.person(2601, "小明", "zh"), photos=())
    shift[0] = timedelta(minutes=12)  # SLA_FIRST_RESPONSE (10 min) has passed for T-000001
    await file_complaint(api, api.person(2602, "小红", "zh"), order="FS2026112399", photos=())
    data = init_data(api.token, MANAGER_ID, "zh", signed_at=clock().timestamp())
    page = (await open_page(browser, mini_app_url(bot.app.http.url, data), DESKTOP)).page
    rows = page.locator("#backlog-table tbody tr")
    await expect(rows.locator("td.reference")).to_have_text(["T-000001已超时", "T-000002"])
    await expect(rows.nth(0).locator(".badge")).to_have_text("已超时")
    await expect(rows.nth(0).locator("td.deadline")).to_have_text(re.compile(r"首次回复 · 超时 "))
    await expect(rows.nth(1).locator("td.deadline")).to_have_text(re.compile(r"首次回复 · 还剩 "))
    assert await rows.nth(1).locator(".badge").count() == 0


@needs_chromium
async def test_when_the_session_runs_out_the_page_signs_in_again_while_telegram_vouches(
    api: BotApiStandIn, start_bot: Any, browser: Browser
) -> None:
    """Past the session's hour, while Telegram's initData is less than a day old, the page signs
    in again with it, quietly, and the tapped ticket opens; past the initData's day, the page
    shows the desk's reason in place of the data, and no ticket."""
    shift = [timedelta()]

    def clock() -> datetime:
        return datetime.now(UTC) + shift[0]

    bot = await start_bot(clock=clock)
    await file_complaint(api, api.person(2701, "小明", "zh"), photos=())
    data = init_data(api.token, MANAGER_ID, "zh")
    opened = await open_page(browser, mini_app_url(bot.app.http.url, data))
    page = opened.page
    row = page.locator("#backlog-table tbody tr")
    await expect(row).to_have_count(1)
    await expect(page.locator("#heat-table")).to_be_visible()

    def sign_ins() -> list[Request]:
        return [r for r in opened.requests if r.url.endswith("/dashboard/api/session")]

    assert len(sign_ins()) == 1
    shift[0] = timedelta(hours=1, minutes=1)  # the token's hour is up, the initData's day not
    async with page.expect_response(lambda answer: "/api/tickets/" in answer.url) as refused:
        await row.tap()
    assert (await refused.value).status == 403  # the old token, refused: the page signed in again
    dialog = page.locator("dialog#ticket")
    await expect(dialog.locator("#timeline")).to_contain_text("花送到的时候")
    assert len(sign_ins()) == 2
    await expect(page.locator("#message")).to_have_count(0)  # no refusal on the way
    await dialog.locator("button.back").tap()

    shift[0] = timedelta(hours=25)  # the new token's hour is up, and the initData's day
    await row.tap()
    await expect(page.locator("#message")).to_contain_text("已过期")
    assert len(sign_ins()) == 3  # tried once, and refused
    assert await page.locator("table").count() == 0
    await expect(dialog).to_be_hidden()
    assert "花送到的时候" not in await page.content()


@needs_chromium
async def test_the_page_follows_the_managers_language(
    api: BotApiStandIn, start_bot: Any, browser: Browser
) -> None:
    """A manager whose Telegram is in English gets the page in English, headings, tabs and the
    ticket's labels alike; in January the month tabs are the shop's December and January, and
    December asks for its figures; the page tells Telegram's app it is ready."""
    clock = ShopClock(datetime(2027, 1, 15, 12, 0, tzinfo=SHOP))
    bot = await start_bot(clock=clock)
    await file_complaint(api, api.person(2401, "Lily", "zh"))
    page = (
        await open_page(
            browser,
            mini_app_url(
                bot.app.http.url, init_data(api.token, MANAGER_ID, "en", clock().timestamp())
            ),
            locale="zh-CN",
            init_script=TELEGRAM_APP_BRIDGE,
        )
    ).page
    await expect(page.locator("h1")).to_have_text("Complaint dashboard")
    tabs = page.locator(".tab")
    await expect(tabs).to_have_text(["7 days", "30 days", "Dec", "Jan"])
    await expect(tabs.nth(2)).to_have_attribute("title", "Last month: December 2026")
    await expect(tabs.nth(3)).to_have_attribute("title", "This month: January 2027 (so far)")
    await expect(page.locator("#backlog-table tbody tr")).to_have_count(1)
    await expect(page.locator("#backlog-table tbody tr")).to_contain_text("Flower quality")
    assert await page.evaluate("document.documentElement.lang") == "en"
    # told Telegram's app it is ready (and may have the whole height), without Telegram's script
    assert await page.evaluate("window.toldTelegram") == ["web_app_ready", "web_app_expand"]
    async with page.expect_response(lambda answer: "period=2026-12" in answer.url) as december:
        await tabs.nth(2).tap()
    assert (await december.value).ok
    await expect(page.locator("#heat .empty")).to_have_text("No complaints in this period.")
    await expect(tabs.nth(2)).to_have_attribute("aria-selected", "true")


@needs_chromium
@pytest.mark.parametrize(
    ("scheme", "background"), [("dark", "rgb(23, 33, 43)"), ("light", "rgb(255, 255, 255)")]
)
async def test_without_telegrams_theme_the_page_follows_the_device(
    api: BotApiStandIn,
    start_bot: Any,
    browser: Browser,
    scheme: Literal["light", "dark"],
    background: str,
) -> None:
    """Opened with no theme from Telegram (Telegram Web, an old client), the page is dark on a
    device in its dark scheme and light in its light one; Telegram's own theme, when given,
    wins over the device's."""
    bot = await start_bot()
    base = bot.app.http.url
    data = init_data(api.token, MANAGER_ID, "zh")
    opened = await open_page(browser, mini_app_url(base, data), color_scheme=scheme)
    page = opened.page
    await expect(page.locator("#backlog-empty")).to_have_text("没有未结投诉。")
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == background
    themed = DARK_THEME if scheme == "light" else LIGHT_THEME
    told = (await open_page(browser, mini_app_url(base, data, themed), color_scheme=scheme)).page
    await expect(told.locator("#backlog-empty")).to_be_visible()
    given = await told.evaluate("getComputedStyle(document.body).backgroundColor")
    assert given == ("rgb(33, 33, 33)" if scheme == "light" else "rgb(255, 255, 255)")
    assert not opened.problems, opened.problems


@needs_chromium
async def test_others_see_why_and_no_data(
    api: BotApiStandIn, start_bot: Any, browser: Browser
) -> None:
    """A non-manager's initData, a tampered hash and a day-old one each get the desk's refusal,
    in the visitor's language, and the page asks for no data."""
    bot = await start_bot()
    await file_complaint(api, api.person(2501, "小明", "zh"))
    base = bot.app.http.url
    cases = [
        (init_data(api.token, 3501, "en"), "managers only"),
        (init_data(api.token, 3501, "zh").replace("3501", str(MANAGER_ID)), "确认不了您的身份"),
        (init_data(api.token, MANAGER_ID, "zh", signed_at=time.time() - 25 * 3600), "已过期"),
    ]
    for data, reason in cases:
        opened = await open_page(browser, mini_app_url(base, data, LIGHT_THEME))
        page = opened.page
        await expect(page.locator("#message")).to_contain_text(reason)
        assert await page.locator("table").count() == 0
        assert "T-000001" not in await page.content()
        asked = [r.url for r in opened.requests if "/dashboard/api/" in r.url]
        assert asked == [f"{base}/dashboard/api/session"]


@needs_chromium
async def test_opened_outside_a_messenger_the_page_says_where_to_open_it(
    api: BotApiStandIn, start_bot: Any, browser: Browser
) -> None:
    """Opened with nothing from Telegram or WeCom, the page says to open it from the bot's
    /dashboard (in Chinese, or in English for an English browser) and asks for nothing."""
    bot = await start_bot()
    chinese = await open_page(browser, f"{bot.app.http.url}/dashboard")
    await expect(chinese.page.locator("#message")).to_contain_text("/dashboard")
    await expect(chinese.page.locator("#message")).to_contain_text(
        "请在 Telegram 机器人私聊或企业微信应用里发送 /dashboard"
    )
    english = await open_page(browser, f"{bot.app.http.url}/dashboard", locale="en-US")
    await expect(english.page.locator("#message")).to_contain_text("Open this page from the bot")
    await expect(english.page.locator("#message")).to_contain_text("the WeCom app")
    assert not [r for r in chinese.requests + english.requests if "/dashboard/api/" in r.url]


async def wecom_managers_card(start_bot: Any, wecom: WeComStandIn, **settings: Any) -> Any:
    """An all-WeCom desk with a public address on a free port, one complaint filed, and the
    card `/dashboard` brought the manager (boss; zhangsan is staff): (the address, the card)."""
    boss = wecom.staff("boss", "陈店长")
    wecom.staff("zhangsan", "张三")
    public = f"http://127.0.0.1:{(port := free_port())}"
    await start_all_wecom(start_bot, wecom, http_port=str(port), public_url=public, **settings)
    await complaint_filed(wecom)
    mark = len(wecom.app_sent)
    boss.say("/dashboard")
    return public, await card_for(wecom, boss, mark)


@needs_chromium
async def test_a_wecom_manager_opens_the_page_from_the_apps_card(
    wecom: WeComStandIn, start_bot: Any, browser: Browser
) -> None:
    """In WeCom the card's link goes through WeCom's web sign-in and comes back to the page
    with a code: the manager sees the backlog and the heat map, and a reload (the code is
    spent by then) keeps the session; past the session's hour the page, with no code left to
    sign in with, asks the manager to open it again from the app; a member who is no manager,
    following the same link, sees the refusal and no data."""
    clock = ShopClock(SHOP_MORNING)
    wecom.callback_clock = lambda: clock().timestamp()  # WeCom's callbacks: on the desk's time
    public, card = await wecom_managers_card(start_bot, wecom, clock=clock)

    wecom.sign_in_as("boss")
    opened = await open_page(browser, card.link)
    page = opened.page
    rows = page.locator("#backlog-table tbody tr")
    await expect(rows.locator("td.reference .link")).to_have_text(["T-000001"])
    quality = page.locator("#heat-table tbody tr", has=page.locator("th", has_text="花材质量"))
    await expect(quality.locator(f'td[data-column="{week_of(SHOP_MORNING)}"]')).to_have_text("1")
    assert page.url == f"{public}/dashboard?via=wecom"  # the spent code is out of the URL
    # the page posted the code WeCom put in its URL, as it is, to the WeCom sign-in
    [landed] = [r for r in opened.requests if r.url.startswith(f"{public}/dashboard?")]
    [code] = parse_qs(urlsplit(landed.url).query)["code"]
    [signed_in] = [r for r in opened.requests if "/dashboard/api/session" in r.url]
    assert signed_in.url == f"{public}/dashboard/api/session?via=wecom"
    assert signed_in.method == "POST" and signed_in.post_data == code
    await page.reload()
    await expect(rows.locator("td.reference .link")).to_have_text(["T-000001"])
    assert not opened.problems, opened.problems

    clock.advance(timedelta(hours=1, minutes=1))  # the session's hour is up
    await rows.first.tap()
    await expect(page.locator("#message")).to_contain_text("请在企业微信应用里重新发送 /dashboard")
    assert await page.locator("table").count() == 0
    await expect(page.locator("dialog#ticket")).to_be_hidden()
    # the spent code is not tried again
    assert len([r for r in opened.requests if "/dashboard/api/session" in r.url]) == 1

    wecom.sign_in_as("zhangsan")  # the link passed on to a member who is no manager
    refused = await open_page(browser, card.link)
    await expect(refused.page.locator("#message")).to_contain_text("仅供店长使用")
    assert await refused.page.locator("table").count() == 0
    asked = [r.url for r in refused.requests if "/dashboard/api/" in r.url]
    assert asked == [f"{public}/dashboard/api/session?via=wecom"]


@needs_chromium
async def test_when_wecom_does_not_answer_the_page_says_so_and_a_retry_gets_in(
    wecom: WeComStandIn, start_bot: Any, browser: Browser
) -> None:
    """WeCom down at the sign-in: the page says WeCom did not answer and offers to try again,
    showing no data; once WeCom answers, the retry (the same code, not spent meanwhile) opens
    the page."""
    public, card = await wecom_managers_card(start_bot, wecom)

    wecom.sign_in_as("boss")
    wecom.inject_http("auth/getuserinfo", 502, count=100)  # WeCom away for a while
    opened = await open_page(browser, card.link)
    page = opened.page
    await expect(page.locator("#message")).to_contain_text("企业微信暂时没有回应")
    assert await page.locator("table").count() == 0
    wecom.faults.clear()  # WeCom is back
    await page.get_by_role("button", name="重试").tap()
    await expect(page.locator("#backlog-table td.reference .link")).to_have_text(["T-000001"])
    signed_in = [r for r in opened.requests if "/dashboard/api/session" in r.url]
    assert len(signed_in) == 2 and signed_in[0].post_data == signed_in[1].post_data
    # nothing went wrong but the one sign-in WeCom did not answer (Chromium logs its 503)
    assert opened.problems == [
        "Failed to load resource: the server responded with a status of 503 (Service Unavailable)"
    ]
