"""The complaint record for the manager: one row per ticket, as an Excel workbook (.xlsx) or as
CSV. The columns are RECORD_COLUMNS; the caller gives the header texts and `show`, which turns a
stored key (category, tier, channel, status, root cause...) into its label; an empty value is an
empty cell, without asking `show`. Times are shown in the shop's time zone.

Both writers stream: each row is written as it comes from the iterable, never gathered in a
list. XlsxWriter runs in constant_memory mode (one row in memory; the sheet's XML goes to a
temporary file until the workbook is zipped into memory).

Customer text that starts like a formula (= + - @) is never written as one: the workbook writes
every text as a string cell, the CSV puts a ' in front of it (OWASP's CSV injection advice)."""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from operator import attrgetter
from zoneinfo import ZoneInfo

from bot.domain.insight import RecordRow

DEFAULT_TIMEZONE = "Asia/Shanghai"  # as Period's
# column key -> the RecordRow field it shows, in the order of the columns
FIELDS: dict[str, str] = {
    "reference": "reference",
    "time": "submitted_at",
    "channel": "channel",
    "customer": "customer",
    "contact": "contact",
    "order": "order_number",
    "product": "product",
    "batch": "batch",
    "store": "store",
    "region": "region",
    "category": "category",
    "severity": "severity",
    "story": "story",
    "photos": "photos",
    "first_answer_at": "first_answer_at",
    "first_answer_minutes": "first_answer_minutes",
    "actions": "actions",
    "remedy": "remedy",
    "result": "result",
    "satisfaction": "satisfaction",
    "root_cause": "root_cause",
    "responsible": "responsible",
}
RECORD_COLUMNS: tuple[str, ...] = tuple(FIELDS)
# stored keys, shown through `show`; the other text columns are shown as they are
KEY_COLUMNS = frozenset(
    {"channel", "category", "severity", "remedy", "result", "root_cause", "responsible"}
)
TIME_COLUMNS = frozenset({"time", "first_answer_at"})
NUMBER_FORMATS = {"photos": "0", "first_answer_minutes": "0.0", "satisfaction": "0"}
TIME_FORMAT = "yyyy-mm-dd hh:mm"
# characters wide (a CJK character counts two); the header's own width wins when it is wider
WIDTHS = {
    "reference": 10,
    "time": 17, "channel": 10, "customer": 16, "contact": 16, "order": 18, "product": 20,
    "batch": 12, "store": 14, "region": 12, "category": 14, "severity": 12, "story": 50,
    "photos": 8, "first_answer_at": 17, "first_answer_minutes": 12, "actions": 40,
    "remedy": 20, "result": 12, "satisfaction": 10, "root_cause": 14, "responsible": 12,
}  # fmt: skip
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# C0 controls other than tab, LF and CR: XML cannot carry them (Excel would show _x0007_)
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
EXCEL_EPOCH = datetime(1899, 12, 30)
SECONDS_PER_DAY = 86_400
_TEXT, _KEY, _NUMBER, _TIME = range(4)


def as_stored(column: str, value: str) -> str:
    """The default `show`: a stored key shown as it is."""
    return value


def write_xlsx(
    rows: Iterable[RecordRow],
    headers: Mapping[str, str],
    show: Callable[[str, str], str] = as_stored,
    timezone: str = DEFAULT_TIMEZONE,
    sheet_title: str = "Sheet1",
) -> bytes:
    """The record as an .xlsx workbook: a bold, frozen header row with filters, one row per
    ticket, times as Excel date-times in the shop's zone, counts and minutes as numbers."""
    import xlsxwriter  # type: ignore[import-untyped]

    zone = ZoneInfo(timezone)
    kinds = [_kind(column) for column in RECORD_COLUMNS]
    values_of = attrgetter(*FIELDS.values())
    output = io.BytesIO()
    # constant_memory, not in_memory: XlsxWriter turns constant_memory off in in_memory mode
    with xlsxwriter.Workbook(output, {"constant_memory": True}) as book:
        sheet = book.add_worksheet(sheet_name(sheet_title))
        header_format = book.add_format({"bold": True, "bottom": 1, "bg_color": "#F2F2F2"})
        time_format = book.add_format({"num_format": TIME_FORMAT})
        number_formats = [
            book.add_format({"num_format": NUMBER_FORMATS[column]})
            if column in NUMBER_FORMATS
            else None
            for column in RECORD_COLUMNS
        ]
        for index, column in enumerate(RECORD_COLUMNS):
            header = headers.get(column, column)
            sheet.set_column(index, index, max(WIDTHS[column], display_width(header) + 3))
            sheet.write_string(0, index, header, header_format)
        sheet.freeze_panes(1, 0)

        write_string, write_number = sheet.write_string, sheet.write_number
        last = 0
        for last, record in enumerate(rows, start=1):
            for index, value in enumerate(values_of(record)):
                if value is None or value == "":
                    continue
                kind = kinds[index]
                if kind == _TEXT or kind == _KEY:
                    if kind == _KEY:
                        value = show(RECORD_COLUMNS[index], value)
                    if CONTROL_CHARACTERS.search(value):  # rare: search is cheaper than sub
                        value = CONTROL_CHARACTERS.sub("", value)
                    if value.startswith("<r>") and value.endswith("</r>"):
                        # constant_memory would copy such a string into the XML unescaped
                        sheet.write_rich_string(last, index, value[0], value[1], value[2:])
                    else:
                        write_string(last, index, value)
                elif kind == _TIME:
                    write_number(last, index, excel_time(value, zone), time_format)
                elif math.isfinite(value):
                    write_number(last, index, value, number_formats[index])
        sheet.autofilter(0, 0, last, len(RECORD_COLUMNS) - 1)
    return output.getvalue()


def write_csv(
    rows: Iterable[RecordRow],
    headers: Mapping[str, str],
    show: Callable[[str, str], str] = as_stored,
    timezone: str = DEFAULT_TIMEZONE,
) -> bytes:
    """The record as CSV: UTF-8 with a BOM (so that Excel reads Chinese right), CRLF line ends,
    times as YYYY-MM-DD HH:MM in the shop's zone."""
    zone = ZoneInfo(timezone)
    kinds = [_kind(column) for column in RECORD_COLUMNS]
    values_of = attrgetter(*FIELDS.values())
    output = io.BytesIO()
    text = io.TextIOWrapper(output, encoding="utf-8-sig", newline="")  # writes the BOM first
    writer = csv.writer(text)  # lineterminator "\r\n", as RFC 4180
    writer.writerow([csv_text(headers.get(column, column)) for column in RECORD_COLUMNS])
    for record in rows:
        cells: list[str] = []
        for index, value in enumerate(values_of(record)):
            kind = kinds[index]
            if value is None or value == "":
                cells.append("")
            elif kind == _TEXT:
                cells.append(csv_text(value))
            elif kind == _KEY:
                cells.append(csv_text(show(RECORD_COLUMNS[index], value)))
            elif kind == _TIME:
                cells.append(local_minute(value, zone))
            elif isinstance(value, float):
                cells.append(f"{value:.1f}" if math.isfinite(value) else "")
            else:
                cells.append(str(value))
        writer.writerow(cells)
    text.flush()
    text.detach()
    return output.getvalue()


def _kind(column: str) -> int:
    if column in TIME_COLUMNS:
        return _TIME
    if column in NUMBER_FORMATS:
        return _NUMBER
    return _KEY if column in KEY_COLUMNS else _TEXT


def csv_text(value: str) -> str:
    """Text that a spreadsheet would take for a formula gets a ' in front."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def local(moment: datetime, zone: ZoneInfo) -> datetime:
    """The shop's wall-clock time, naive (a naive moment is taken as UTC, as the desk stores)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).replace(tzinfo=None)


def local_minute(moment: datetime, zone: ZoneInfo) -> str:
    """YYYY-MM-DD HH:MM in the shop's zone."""
    wall = local(moment, zone)
    return f"{wall.year:04d}-{wall.month:02d}-{wall.day:02d} {wall.hour:02d}:{wall.minute:02d}"


def excel_time(moment: datetime, zone: ZoneInfo) -> float:
    """The Excel serial date-time (days since 1899-12-30) of the shop's wall-clock time."""
    delta = local(moment, zone) - EXCEL_EPOCH
    return delta.days + (delta.seconds + delta.microseconds / 1e6) / SECONDS_PER_DAY


def sheet_name(title: str) -> str:
    """A name Excel accepts for a sheet: none of []:*?/\\, no ' at either end, 31 characters."""
    name = SHEET_NAME_FORBIDDEN.sub("-", title).strip("'")[:31].strip("'")
    return name or "Sheet1"


def display_width(text: str) -> int:
    """Roughly how many Latin characters wide the text is: wide (CJK) characters count two."""
    return sum(1 + (unicodedata.east_asian_width(character) in "WF") for character in text)
