"""The dashboard's figures in plain Python: the chart's days added up week by week, the store x
category grid, and the JSON the page reads (the contract's shapes, labels as shown)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.dashboard import figures_json, timeline_json
from bot.domain.insight import DayCount, Figures, Period, Summary, TimelineEntry, weeks_of
from bot.domain.tickets import CustomerRef, Status, Ticket

# Saturday 2026-11-07 .. Tuesday 2026-11-10 in Shanghai
START = datetime(2026, 11, 6, 16, 0, tzinfo=UTC)
PERIOD = Period(START, START + timedelta(days=4), "4d")
LABELS = {
    ("category", "quality"): "花材质量",
    ("category", "late"): "配送延误",
    ("category", "packaging"): "包装破损",
    ("root_cause", "product_defect"): "产品缺陷",
    ("result", "open"): "待处理",
    ("severity", "medium"): "中等",
    ("timeline", "submitted"): "提交给员工",
    ("timeline", "text"): "文字",
}


def show(column: str, key: str) -> str:
    return LABELS.get((column, key), key)


def days() -> list[DayCount]:
    counts = [  # (by category, answered, in time)
        ({"quality": 2, "late": 1}, 3, 3),  # Saturday 7th
        ({"quality": 1, "late": 0}, 1, 0),  # Sunday 8th
        ({"quality": 0, "late": 0}, 0, 0),  # Monday 9th: a new week, nothing yet
        ({"quality": 1, "late": 2}, 2, 1),  # Tuesday 10th
    ]
    return [
        DayCount(date(2026, 11, 7) + timedelta(days=n), by, answered, in_time)
        for n, (by, answered, in_time) in enumerate(counts)
    ]


def figures(**overrides: object) -> Figures:
    summary = Summary(
        period=PERIOD,
        total=7,
        by_category=[("quality", 4), ("late", 3)],
        by_severity=[],
        backlog=2,
        first_answer_median=390.0,
        first_answer_p90=900.0,
        first_answer_in_sla=4 / 6,
        answered=6,
        resolution_median=5.5 * 3600,
        resolved=3,
        satisfaction_average=4.5,
        satisfaction_answers=2,
        top_products=[("红玫瑰花束", 3)],
        days=days(),
    )
    values: dict[str, object] = {
        "summary": summary,
        "by_store": [("静安店", "late", 1), ("徐汇店", "quality", 2), ("静安店", "packaging", 1)],
        "satisfaction_scores": {1: 0, 2: 0, 3: 0, 4: 1, 5: 1},
        "top_batches": [("B1110", 2)],
        "root_causes": [("product_defect", 2)],
        **overrides,
    }
    return Figures(**values)  # type: ignore[arg-type]


def test_the_days_add_up_week_by_week_from_the_first_days_monday() -> None:
    """Saturday and Sunday are the week of Monday the 2nd; Monday the 9th starts the next,
    with its empty day counted as 0; answered and in time add up too."""
    weeks = weeks_of(days())
    assert [w.monday for w in weeks] == [date(2026, 11, 2), date(2026, 11, 9)]
    assert [w.by_category for w in weeks] == [{"quality": 3, "late": 1}, {"quality": 1, "late": 2}]
    assert [(w.answered, w.answered_in_time, w.sla_hit) for w in weeks] == [
        (4, 3, 0.75),
        (2, 1, 0.5),
    ]
    assert weeks_of([DayCount(date(2026, 11, 11), {})])[0].sla_hit is None


def test_the_store_grid_keeps_the_summarys_category_order_most_complained_store_first() -> None:
    """Categories as the summary orders them (most first), a category only stores have after
    them; stores by their total, ties by name."""
    categories, rows = figures().stores()
    assert categories == ["quality", "late", "packaging"]
    assert rows == [("徐汇店", [2, 0, 0]), ("静安店", [0, 1, 1])]
    assert figures(by_store=[]).stores() == ([], [])


def test_the_figures_json_has_the_contracts_shape_with_labels() -> None:
    """Weeks as Mondays, a heat row per category (labels shown), the store grid, the on-time
    share week by week, medians in minutes and hours, every score 1..5, the repeats."""
    data = figures_json(figures(), show, timedelta(minutes=10))
    assert data["period"] == {
        "label": "4d",
        "start": "2026-11-06T16:00:00+00:00",
        "end": "2026-11-10T16:00:00+00:00",
        "timezone": "Asia/Shanghai",
    }
    assert data["total"] == 7 and data["backlog"] == 2
    assert data["heat"] == {
        "weeks": ["2026-11-02", "2026-11-09"],
        "rows": [
            {"key": "quality", "label": "花材质量", "counts": [3, 1]},
            {"key": "late", "label": "配送延误", "counts": [1, 2]},
        ],
        "max": 3,
    }
    assert data["stores"] == {
        "categories": [
            {"key": "quality", "label": "花材质量"},
            {"key": "late", "label": "配送延误"},
            {"key": "packaging", "label": "包装破损"},
        ],
        "rows": [
            {"store": "徐汇店", "counts": [2, 0, 0]},
            {"store": "静安店", "counts": [0, 1, 1]},
        ],
        "max": 2,
    }
    assert data["on_time"] == {
        "weeks": ["2026-11-02", "2026-11-09"],
        "answered": [4, 2],
        "in_time": [3, 1],
        "share": [0.75, 0.5],
        "within_minutes": 10,
    }
    assert data["first_answer_median_minutes"] == 6.5 and data["resolve_median_hours"] == 5.5
    assert data["satisfaction"] == {
        "average": 4.5,
        "answers": 2,
        "scores": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1},
    }
    assert data["repeats"] == {
        "products": [{"name": "红玫瑰花束", "count": 3}],
        "batches": [{"name": "B1110", "count": 2}],
        "root_causes": [{"key": "product_defect", "label": "产品缺陷", "count": 2}],
    }


def test_no_store_and_no_answer_are_null() -> None:
    """No ticket's order names a store: `stores` is null; nothing measured: null figures."""
    empty = figures(by_store=[])
    data = figures_json(empty, show, timedelta(minutes=10))
    assert data["stores"] is None
    quiet = Summary(PERIOD, 0, [], [], 0, None, None, None, 0, None, 0, None, 0, [], [])
    data = figures_json(figures(summary=quiet, by_store=[]), show, timedelta(minutes=10))
    assert data["heat"] == {"weeks": [], "rows": [], "max": 0}
    assert data["first_answer_median_minutes"] is None and data["resolve_median_hours"] is None


def test_a_tickets_timeline_json_says_what_each_line_is() -> None:
    """The ticket's labels and each entry, its time in ISO and what it is as shown."""
    now = datetime(2026, 11, 9, 2, 0, tzinfo=UTC)
    ticket = Ticket.receive(CustomerRef("telegram", "7"), "小明", "zh", now)
    ticket.id, ticket.status = 12, Status.OPEN
    ticket.category, ticket.severity = "quality", "medium"
    entries = [
        TimelineEntry(now, "message", "text", "小明", "customer", "花蔫了", "in"),
        TimelineEntry(now, "event", "submitted", "小明", "customer", ""),
    ]
    assert timeline_json(ticket, entries, show) == {
        "reference": "T-000012",
        "category_label": "花材质量",
        "status_label": "待处理",
        "severity_label": "中等",
        "customer": "小明",
        "entries": [
            {
                "at": "2026-11-09T02:00:00+00:00",
                "kind": "message",
                "who": "小明",
                "role": "customer",
                "what": "文字",
                "text": "花蔫了",
                "direction": "in",
            },
            {
                "at": "2026-11-09T02:00:00+00:00",
                "kind": "event",
                "who": "小明",
                "role": "customer",
                "what": "提交给员工",
                "text": "",
                "direction": "",
            },
        ],
    }
