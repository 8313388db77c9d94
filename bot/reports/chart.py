"""The manager's chart: complaints per day, stacked by category, with the share of first answers
given in time (the SLA hit rate) as a line on a second, 0-100 % axis.

matplotlib is imported inside the functions (the bot does not load it at start) and used through
its object API (`Figure` + the Agg canvas): no pyplot, no global figure state, so charts can be
drawn in several threads at once. The only shared state is the one-time registration of the CJK
font, under a lock."""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from bot.domain.insight import DayCount, Summary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

CJK_FONT_PACKAGE = "mplfonts"
CJK_FONT_FILE = "NotoSansCJKsc-Regular.otf"  # shipped in the mplfonts wheel, under fonts/
LATIN_FALLBACK = "DejaVu Sans"  # matplotlib's own font: whatever the CJK font lacks
WIDTH_PX, HEIGHT_PX, DPI = 1000, 560, 100
MAX_DAY_LABELS = 15  # at most this many dates under the bars: 92 days get every 7th
MAX_TOTALS_SHOWN = 31  # beyond a month the bars are too thin for their totals on top
# matplotlib's tab10, then its lighter tab20 halves: a category keeps its colour in every chart
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
SLA_COLOUR = "#222222"


@dataclass(frozen=True)
class ChartLabels:
    """Every text the chart shows, in the manager's language (the caller looks them up)."""

    title: str
    y_count: str  # the left axis: complaints
    y_sla: str  # the right axis: answered in time, %
    sla_line: str  # the line's legend entry
    categories: Mapping[str, str]  # category key -> label, in the policy's order
    no_data: str  # shown across an empty chart


_font_lock = threading.Lock()
_families: tuple[str, ...] | None = None


def cjk_font_path() -> Path | None:
    """The CJK font file the mplfonts package ships, found without importing the package."""
    spec = importlib.util.find_spec(CJK_FONT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "fonts" / CJK_FONT_FILE
        if candidate.is_file():
            return candidate
    return None


def font_families() -> tuple[str, ...]:
    """The font families the chart's text is set in: the CJK font (registered with matplotlib
    once per process), then DejaVu Sans for any glyph it lacks."""
    global _families
    with _font_lock:
        if _families is None:
            from matplotlib import font_manager

            path = cjk_font_path()
            if path is None:
                logger.warning(
                    "No %s in %s: Chinese text will not render", CJK_FONT_FILE, CJK_FONT_PACKAGE
                )
                _families = (LATIN_FALLBACK,)
            else:
                font_manager.fontManager.addfont(path)
                family = font_manager.FontProperties(fname=path).get_name()
                _families = (family, LATIN_FALLBACK)
        return _families


def category_colour(key: str, labels: ChartLabels) -> str:
    """The policy's n-th category gets the palette's n-th colour; a key the policy does not
    list gets one from its name (crc32, the same in every process), among the colours the
    policy left free."""
    order = list(labels.categories)
    if key in labels.categories:
        return PALETTE[order.index(key) % len(PALETTE)]
    free = PALETTE[len(order) :] or PALETTE
    return free[zlib.crc32(key.encode()) % len(free)]


def stack_order(days: Sequence[DayCount], labels: ChartLabels) -> list[str]:
    """The categories that had complaints, bottom up: the policy's order, then unknown keys."""
    seen = {key for day in days for key, count in day.by_category.items() if count}
    known = [key for key in labels.categories if key in seen]
    return known + sorted(seen - set(labels.categories))


def day_label_step(days: int) -> int:
    """Label every n-th day so that no more than MAX_DAY_LABELS dates share the axis."""
    return max(1, math.ceil(days / MAX_DAY_LABELS))


def chart_figure(summary: Summary, labels: ChartLabels) -> Figure:
    """The chart as a matplotlib Figure (not yet drawn): bars, SLA line, axes and legend."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    families = list(font_families())
    days = summary.days
    positions = list(range(len(days)))
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    counts = figure.add_subplot()
    shares = counts.twinx()  # drawn over the bars, so the line stays visible
    counts.set_title(labels.title, fontfamily=families, fontsize=15, pad=12)
    counts.set_ylabel(labels.y_count, fontfamily=families, fontsize=11)
    shares.set_ylabel(labels.y_sla, fontfamily=families, fontsize=11)
    for axes in (counts, shares):
        axes.tick_params(labelfontfamily=families, labelsize=9)
        axes.spines["top"].set_visible(False)

    bottoms = [0] * len(days)
    for key in stack_order(days, labels):
        heights = [day.by_category.get(key, 0) for day in days]
        counts.bar(
            positions,
            heights,
            bottom=bottoms,
            width=0.8,
            zorder=2,
            color=category_colour(key, labels),
            label=labels.categories.get(key, key),
        )
        bottoms = [bottom + height for bottom, height in zip(bottoms, heights, strict=True)]
    highest = max(bottoms, default=0)
    counts.set_ylim(0, max(highest, 1) * 1.12)  # head-room for the totals over the bars
    counts.yaxis.set_major_locator(MaxNLocator(integer=True))
    counts.grid(axis="y", color="#dddddd", linewidth=0.8, zorder=0)
    counts.set_axisbelow(True)
    if 0 < len(days) <= MAX_TOTALS_SHOWN:
        for position, total in zip(positions, bottoms, strict=True):
            if total:
                counts.text(
                    position,
                    total,
                    str(total),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    color="#444444",
                    fontfamily=families,
                )

    hit = [day.sla_hit * 100 if day.sla_hit is not None else math.nan for day in days]
    if any(not math.isnan(value) for value in hit):
        # NaN leaves a gap: a day without answers has no point; markers show lone points
        shares.plot(
            positions,
            hit,
            color=SLA_COLOUR,
            linewidth=1.8,
            marker="o",
            zorder=3,
            markersize=4 if len(days) <= 45 else 2.5,
            clip_on=False,
            label=labels.sla_line,
        )
    shares.set_ylim(0, 100)
    shares.yaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=0))

    if days:
        step = day_label_step(len(days))
        ticks = positions[::step]
        counts.set_xticks(ticks, [f"{days[i].day:%m-%d}" for i in ticks])
        counts.set_xlim(-0.6, len(days) - 0.4)
    else:
        counts.set_xticks([])
    if highest == 0:
        counts.set_yticks([])  # a lone "1" on an empty chart would read as a count
        counts.text(
            0.5,
            0.5,
            labels.no_data,
            transform=counts.transAxes,
            ha="center",
            va="center",
            fontsize=16,
            color="#888888",
            fontfamily=families,
        )

    handles, texts = counts.get_legend_handles_labels()
    line_handles, line_texts = shares.get_legend_handles_labels()
    if handles or line_handles:
        figure.legend(
            handles + line_handles,
            texts + line_texts,
            loc="outside lower center",
            ncols=min(len(handles) + len(line_handles), 7),
            frameon=False,
            prop={"family": families, "size": 10},
        )
    return figure


def chart_png(summary: Summary, labels: ChartLabels) -> bytes:
    """The chart as a PNG of WIDTH_PX x HEIGHT_PX. Synchronous and CPU-bound: run it in a
    thread (`asyncio.to_thread`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(chart_figure(summary, labels))
    buffer = BytesIO()
    canvas.print_png(buffer)  # type: ignore[no-untyped-call]  # (savefig would heed rcParams)
    return buffer.getvalue()
