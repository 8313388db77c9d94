"""The shop's orders from outside: an Excel file as shops export it, and the shop's endpoint."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import datetime

import openpyxl
import pytest
from aiohttp import web

from bot.orders import OrdersFileError, fetch_order, read_orders
from bot.policy import OrderColumnsIn
from tests.serving import serving


def workbook(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


def test_an_xlsx_export_is_read_by_its_headers() -> None:
    """Columns in any order, named as the shop names them; numbers and dates as written."""
    data = workbook(
        [
            ["备注", "商品", "订单号", "送达时间", "批次"],
            ["加急", "白百合", "fs 2026112305", datetime(2026, 11, 22, 9, 30), 20261120],
            [None, None, None, None, None],
            ["没有单号的一行", "玫瑰", None, None, None],
        ]
    )

    parsed = read_orders("十一月.xlsx", data, OrderColumnsIn())

    [order] = parsed.orders
    assert order.order_number == "FS2026112305"
    assert (order.product, order.batch, order.notes) == ("白百合", "20261120", "加急")
    assert order.delivered_at == "2026-11-22 09:30"
    assert parsed.skipped == 1


def test_a_file_without_an_order_column_is_refused_with_the_reason() -> None:
    with pytest.raises(OrdersFileError, match="no_order_column"):
        read_orders("orders.csv", "商品,批次\n玫瑰,B1\n".encode("gb18030"), OrderColumnsIn())
    with pytest.raises(OrdersFileError, match="type"):
        read_orders("orders.pdf", b"%PDF", OrderColumnsIn())


@pytest.fixture
async def shop() -> AsyncIterator[str]:
    """The shop's own order endpoint: knows one order, and 404 for the rest."""

    async def order(request: web.Request) -> web.Response:
        if request.match_info["number"] != "FS2026112301":
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(
            {"order": {"product": "红玫瑰", "batch": "B7", "store": "静安店"}}
        )

    app = web.Application()
    app.router.add_get("/api/orders/{number}", order)
    async with serving(app) as url:
        yield f"{url}/api/orders/{{order_number}}"


async def test_the_shops_endpoint_answers_one_order(shop: str) -> None:
    order = await fetch_order(shop, "FS2026112301")
    assert order is not None
    assert (order.product, order.batch, order.store) == ("红玫瑰", "B7", "静安店")
    assert await fetch_order(shop, "FS0000000000") is None  # unknown: the card goes without
    assert await fetch_order("http://127.0.0.1:9/{order_number}", "FS1") is None  # down
