"""The shop's orders from outside: a CSV or XLSX file a manager sends (columns found by their
header names, as the policy lists them), or the shop's own endpoint asked for one order."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bot.domain.orders import FIELDS, Order, normalise_number
from bot.http_failure import http_failure
from bot.policy import OrderColumnsIn

logger = logging.getLogger(__name__)

MAX_ROWS = 200_000


class OrdersFileError(ValueError):
    """The file cannot be read as orders; the message says why, for the manager."""


@dataclass
class OrdersFile:
    orders: list[Order] = field(default_factory=list)
    skipped: int = 0  # rows without an order number
    columns: dict[str, str] = field(default_factory=dict)  # field -> the header it came from


def _key(header: object) -> str:
    return "".join(str(header or "").split()).lower()


def _columns(headers: list[object], names: OrderColumnsIn) -> dict[str, int]:
    """Which column holds which field."""
    index = {_key(h): n for n, h in enumerate(headers) if _key(h)}
    found: dict[str, int] = {}
    for name in ("order_number", *FIELDS):
        for header in getattr(names, name):
            if _key(header) in index:
                found[name] = index[_key(header)]
                break
    return found


def _rows_of_csv(data: bytes) -> Iterator[list[object]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise OrdersFileError("encoding")
    dialect: Any = csv.excel
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        pass
    yield from csv.reader(io.StringIO(text), dialect)


def _rows_of_xlsx(data: bytes) -> Iterator[list[object]]:
    from openpyxl import load_workbook  # only when a workbook comes

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # a damaged or foreign file: openpyxl raises many kinds
        raise OrdersFileError("xlsx") from exc
    try:
        sheet = book.worksheets[0]
        for row in sheet.iter_rows(values_only=True):
            yield list(row)
    finally:
        book.close()


def _text(value: object) -> str | None:
    if value is None:
        return None
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M"))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def read_orders(name: str, data: bytes, names: OrderColumnsIn) -> OrdersFile:
    """The orders in a CSV or XLSX file (its first sheet; the first row holds the headers)."""
    lower = name.lower()
    if lower.endswith((".xlsx", ".xlsm")):
        rows = _rows_of_xlsx(data)
    elif lower.endswith((".csv", ".txt")):
        rows = _rows_of_csv(data)
    else:
        raise OrdersFileError("type")
    headers = next(rows, None)
    if headers is None:
        raise OrdersFileError("empty")
    columns = _columns(headers, names)
    if "order_number" not in columns:
        raise OrdersFileError("no_order_column")
    result = OrdersFile(columns={f: str(headers[i]) for f, i in columns.items()})
    for row in rows:
        if len(result.orders) >= MAX_ROWS:
            break
        values = {f: _text(row[i]) if i < len(row) else None for f, i in columns.items()}
        number = values.pop("order_number")
        if not number:
            if any(v for v in row):
                result.skipped += 1
            continue
        result.orders.append(Order(normalise_number(number), **values))
    return result


async def fetch_order(endpoint: str, order_number: str, timeout: float = 3.0) -> Order | None:
    """Ask the shop's endpoint for one order (None when it does not know it, or cannot say in
    time: the complaint goes on without)."""
    import aiohttp

    url = endpoint.replace("{order_number}", order_number)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.get(url) as response:
                if response.status == 404:
                    return None
                response.raise_for_status()
                data = await response.json(content_type=None)
    except Exception as exc:  # the shop's system is down or slow: the card goes without
        # the status or kind only: the endpoint's URL (in aiohttp's text) may hold a key
        logger.warning(
            "The order endpoint did not answer for %s: %s", order_number, http_failure(exc)
        )
        return None
    if not isinstance(data, dict):
        return None
    data = data.get("order", data) if isinstance(data.get("order"), dict) else data
    return Order(normalise_number(order_number), **{f: _text(data.get(f)) for f in FIELDS})
