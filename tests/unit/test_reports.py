"""The manager's chart, workbook and CSV, read back as the manager would see them."""

from __future__ import annotations

import csv
import io
import math
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy
import openpyxl  # type: ignore[import-untyped]
from matplotlib.font_manager import FontProperties, findfont
from matplotlib.ft2font import FT2Font
from PIL import Image

from bot.domain.insight import DayCount, Period, RecordRow, Summary
from bot.reports.chart import (
    CJK_FONT_FILE,
    HEIGHT_PX,
    MAX_DAY_LABELS,
    WIDTH_PX,
    ChartLabels,
    category_colour,
    chart_figure,
    chart_png,
    font_families,
)
from bot.reports.workbook import RECORD_COLUMNS, write_csv, write_xlsx

START = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # 2026-11-01 00:00 in Shanghai
LABELS = ChartLabels(
    title="近 7 天投诉",
    y_count="投诉数",
    y_sla="首次响应达标率",
    sla_line="首次响应达标率",
    categories={"late": "配送延误", "packaging": "包装破损", "quality": "花材质量"},
    no_data="这段时间没有投诉",
)
HEADERS = {
    "reference": "单号",
    "time": "提交时间", "channel": "渠道", "customer": "顾客", "contact": "联系方式",
    "order": "订单号", "product": "商品", "batch": "批次", "store": "门店", "region": "区域",
    "category": "问题类型", "severity": "严重程度", "story": "问题经过", "photos": "照片数",
    "first_answer_at": "首次响应时间", "first_answer_minutes": "首次响应(分钟)",
    "actions": "处理过程", "remedy": "补偿方案", "result": "结果", "satisfaction": "满意度",
    "root_cause": "根本原因", "responsible": "责任环节",
}  # fmt: skip
SHOWN = {
    ("category", "quality"): "花材质量",
    ("channel", "wecom"): "微信",
    ("result", "resolved"): "已结案",
}


def show(column: str, value: str) -> str:
    return SHOWN.get((column, value), value)


def summary(days: list[DayCount]) -> Summary:
    period = Period(START, START + timedelta(days=len(days)), f"{len(days)}d")
    total = sum(day.total for day in days)
    return Summary(period, total, [], [], 0, None, None, None, 0, None, 0, None, 0, [], days)


def week() -> list[DayCount]:
    first = date(2026, 11, 1)
    counts = [
        ({"late": 3, "quality": 2}, 5, 4),
        ({"packaging": 1}, 1, 1),
        ({}, 0, 0),  # a quiet day: no bar, no SLA point
        ({"quality": 4, "other": 1}, 4, 2),
        ({"late": 2}, 2, 2),
        ({"packaging": 2, "quality": 1}, 3, 3),
        ({"late": 1}, 1, 0),
    ]
    return [
        DayCount(first + timedelta(days=n), by, answered, in_time)
        for n, (by, answered, in_time) in enumerate(counts)
    ]


def record(**changes: object) -> RecordRow:
    values: dict[str, object] = {
        "reference": "T-1",
        "submitted_at": START + timedelta(hours=10, minutes=30),  # 10:30 in Shanghai
        "channel": "wecom",
        "customer": "王小明",
        "contact": "138****5678",
        "order_number": "FS-20261101-001",
        "product": "红玫瑰 11 枝",
        "batch": "B-17",
        "category": "quality",
        "severity": "major",
        "story": "花送到的时候已经蔫了",
        "photos": 2,
        "first_answer_at": START + timedelta(hours=10, minutes=42),
        "first_answer_minutes": 12.5,
        "actions": "致歉并补发",
        "remedy": "reship:today",
        "result": "resolved",
        "satisfaction": 4,
        "root_cause": "product_defect",
        "responsible": "supply_chain",
        "store": "静安店",
        "region": "上海",
    }
    values.update(changes)
    return RecordRow(**values)  # type: ignore[arg-type]


def test_the_chart_is_a_png_of_the_promised_size() -> None:
    """A week's chart opens as a 1000x560 PNG."""
    png = chart_png(summary(week()), LABELS)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == (WIDTH_PX, HEIGHT_PX)


def test_chinese_is_drawn_with_the_cjk_font_without_missing_glyphs() -> None:
    """Chinese titles and legends resolve to Noto Sans CJK, which has the glyphs: no tofu. The
    file is the one mplfonts ships, or the same face from the system's fonts where Debian's
    fonts-noto-cjk is installed too (matplotlib may pick either: one family, one face)."""
    family = font_families()[0]
    assert family == "Noto Sans CJK SC"
    path = findfont(FontProperties(family=[family]), fallback_to_default=False)
    assert Path(path).name in (CJK_FONT_FILE, "NotoSansCJK-Regular.ttc")
    assert all(FT2Font(path).get_char_index(ord(character)) for character in "花投诉达标率")
    figure = chart_figure(summary(week()), LABELS)
    title = figure.axes[0].title
    assert title.get_text() == "近 7 天投诉"
    assert findfont(title.get_fontproperties()) == path
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)"
        chart_png(summary(week()), LABELS)


def test_bars_stack_by_category_in_colours_that_do_not_change() -> None:
    """Each day's bars add up to its complaints; a category keeps its colour across charts."""
    figure = chart_figure(summary(week()), LABELS)
    counts = figure.axes[0]
    stacks = {container.get_label(): container for container in counts.containers}
    assert list(stacks) == ["配送延误", "包装破损", "花材质量", "other"]
    heights = [sum(stack[day].get_height() for stack in stacks.values()) for day in range(7)]
    assert heights == [5, 1, 0, 5, 2, 3, 1]
    quality = stacks["花材质量"][0].get_facecolor()
    alone = chart_figure(summary([DayCount(date(2026, 11, 1), {"quality": 1})]), LABELS)
    assert alone.axes[0].containers[0][0].get_facecolor() == quality
    assert category_colour("other", LABELS) not in {
        category_colour(key, LABELS) for key in LABELS.categories
    }


def test_the_sla_line_is_in_percent_with_gaps_on_days_without_answers() -> None:
    """The SLA hit rate is drawn 0-100 %, with no point on a day nobody was answered."""
    shares = chart_figure(summary(week()), LABELS).axes[1]
    line = shares.lines[0]
    assert line.get_label() == "首次响应达标率"
    points = numpy.asarray(line.get_ydata(), dtype=float).tolist()
    assert points[:2] == [80.0, 100.0]
    assert math.isnan(points[2])
    assert points[-1] == 0.0
    assert shares.get_ylim() == (0, 100)


def test_an_empty_period_draws_an_empty_chart_that_says_so() -> None:
    """No days, or days without complaints, still give a chart with the 'no data' text."""
    quiet = [DayCount(date(2026, 11, 1) + timedelta(days=n), {}) for n in range(3)]
    for days in ([], quiet):
        figure = chart_figure(summary(days), LABELS)
        assert "这段时间没有投诉" in [text.get_text() for text in figure.axes[0].texts]
    png = chart_png(summary([]), LABELS)
    assert Image.open(io.BytesIO(png)).size == (WIDTH_PX, HEIGHT_PX)


def test_a_quarter_labels_every_seventh_day() -> None:
    """92 days get at most fifteen date labels, so that none overlap."""
    first = date(2026, 9, 1)
    days = [DayCount(first + timedelta(days=n), {"late": n % 5}, 2, 1) for n in range(92)]
    figure = chart_figure(summary(days), LABELS)
    ticks = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert len(ticks) <= MAX_DAY_LABELS
    assert ticks[:3] == ["09-01", "09-08", "09-15"]


def test_the_workbook_reads_back_as_the_manager_sees_it() -> None:
    """Headers in Chinese, one row a ticket, local times as date-times, labels, numbers."""
    rows = [record(), record(story='=HYPERLINK("http://x","点我")', satisfaction=None)]
    data = write_xlsx(iter(rows), HEADERS, show, "Asia/Shanghai", "投诉记录 2026-11")
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    assert sheet.title == "投诉记录 2026-11"
    table = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert table[0] == [HEADERS[column] for column in RECORD_COLUMNS]
    assert len(table) == 3
    first = dict(zip(RECORD_COLUMNS, table[1], strict=True))
    assert first["time"] == datetime(2026, 11, 1, 10, 30)
    assert first["first_answer_at"] == datetime(2026, 11, 1, 10, 42)
    assert sheet["B2"].number_format == "yyyy-mm-dd hh:mm"
    assert (first["channel"], first["category"], first["result"]) == ("微信", "花材质量", "已结案")
    assert (first["severity"], first["remedy"]) == ("major", "reship:today")
    assert (first["customer"], first["story"]) == ("王小明", "花送到的时候已经蔫了")
    assert (first["photos"], first["first_answer_minutes"], first["satisfaction"]) == (2, 12.5, 4)
    story = sheet.cell(row=3, column=RECORD_COLUMNS.index("story") + 1)
    assert story.data_type == "s"
    assert story.value == '=HYPERLINK("http://x","点我")'
    assert table[2][RECORD_COLUMNS.index("satisfaction")] is None
    assert sheet["A1"].font.b
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:V3"


def test_customer_text_that_looks_like_markup_or_has_control_characters_stays_text() -> None:
    """A story shaped like XlsxWriter's rich-string markup, or with a bell in it, is kept."""
    rows = [record(story="<r><x>&</r>"), record(story="坏了\x07!", customer="-1+2")]
    sheet = openpyxl.load_workbook(io.BytesIO(write_xlsx(rows, HEADERS))).active
    assert sheet is not None
    column = RECORD_COLUMNS.index("story") + 1
    assert sheet.cell(row=2, column=column).value == "<r><x>&</r>"
    assert sheet.cell(row=3, column=column).value == "坏了!"
    assert sheet.cell(row=3, column=RECORD_COLUMNS.index("customer") + 1).value == "-1+2"


def test_an_empty_record_gives_a_workbook_with_headers_only() -> None:
    """No tickets: the headers, nothing under them."""
    sheet = openpyxl.load_workbook(io.BytesIO(write_xlsx([], HEADERS))).active
    assert sheet is not None
    assert [[cell.value for cell in row] for row in sheet.iter_rows()] == [
        [HEADERS[column] for column in RECORD_COLUMNS]
    ]


def test_the_csv_has_a_bom_crlf_and_reads_back_to_the_same_rows() -> None:
    """Excel opens it in UTF-8; times are local; a formula-looking cell gets a quote."""
    rows = [record(), record(story="=1+1", first_answer_at=None, first_answer_minutes=None)]
    data = write_csv(iter(rows), HEADERS, show, "Asia/Shanghai")
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == 3
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert table[0] == [HEADERS[column] for column in RECORD_COLUMNS]
    first = dict(zip(RECORD_COLUMNS, table[1], strict=True))
    assert first["time"] == "2026-11-01 10:30"
    assert first["first_answer_at"] == "2026-11-01 10:42"
    assert (first["category"], first["channel"], first["result"]) == ("花材质量", "微信", "已结案")
    assert (first["photos"], first["first_answer_minutes"], first["satisfaction"]) == (
        "2",
        "12.5",
        "4",
    )
    assert first["story"] == "花送到的时候已经蔫了"
    second = dict(zip(RECORD_COLUMNS, table[2], strict=True))
    assert second["story"] == "'=1+1"
    assert (second["first_answer_at"], second["first_answer_minutes"]) == ("", "")
