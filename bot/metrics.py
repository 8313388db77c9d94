"""What an instance tells its operator: `GET /metrics` (the Prometheus text format) and
`GET /healthz`, on the instance's one HTTP server.

Each desk has its own `Metrics`, with its own registry (the tests run several desks in one
process; nothing goes to prometheus_client's global one). The adapters and the sender count as
things happen (updates handled, messenger errors, the time to the first answer); what the
database knows (rows waiting in the outbox, open tickets, deadlines missed) is read at each
scrape, in a read-only unit of work, so it holds across restarts and is the desk's as a whole:
every instance of one desk reports the same figures (aggregate them with max, not sum).

The use cases and the domain know nothing of this module."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from bot.web import Routes
from storage.uow import NewUnitOfWork

logger = logging.getLogger(__name__)

# from a message's arrival to the first answer delivered: a tenth of a second when all is well,
# seconds under a burst (Telegram's 30 a second), a minute when the messenger is away
FIRST_ANSWER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
HEALTH_TIMEOUT = 2.0  # the database (and Redis) must answer within this
REASON_LIMIT = 120

Ping = Callable[[], Awaitable[None]]


@dataclass
class Figures:
    """What the database said at the last scrape."""

    outbox_waiting: int = 0
    open_tickets: dict[str, int] = field(default_factory=dict)
    deadlines_missed: dict[str, int] = field(default_factory=dict)


class _FromDatabase(Collector):
    """The figures read from the database at the scrape (none before the first)."""

    def __init__(self) -> None:
        self.figures: Figures | None = None

    def collect(self) -> Iterator[Metric]:
        figures = self.figures
        if figures is None:
            return
        yield GaugeMetricFamily(
            "desk_outbox_waiting",
            "Outgoing messages not yet sent (the outbox rows waiting), desk-wide",
            value=figures.outbox_waiting,
        )
        tickets = GaugeMetricFamily(
            "desk_open_tickets", "Tickets not yet resolved, by status", labels=["status"]
        )
        for status, count in sorted(figures.open_tickets.items()):
            tickets.add_metric([status], count)
        yield tickets
        missed = CounterMetricFamily(
            "desk_deadlines_missed",
            "Promises missed: deadlines that passed unmet (first response, progress, "
            "resolution), desk-wide, from the tickets' escalations",
            labels=["kind"],
        )
        for kind, count in sorted(figures.deadlines_missed.items()):
            missed.add_metric([kind], count)
        yield missed


class Metrics:
    """One desk's metrics. Built once by `bot.app.build` and passed to the parts that count;
    a part built without one gets a fresh one (counted, never served)."""

    def __init__(self, instance: str = "") -> None:
        self.registry = CollectorRegistry()
        self.updates_handled = Counter(
            "desk_updates_handled",
            "Updates and callbacks handled to the end (committed, or set aside), by channel",
            ["channel"],
            registry=self.registry,
        )
        self.first_answer = Histogram(
            "desk_first_answer_seconds",
            "From the message that opens a complaint arriving to the first answer delivered",
            buckets=FIRST_ANSWER_BUCKETS,
            registry=self.registry,
        )
        self.messenger_errors = Counter(
            "desk_messenger_errors",
            "Error answers from a messenger's API (an HTTP status, a WeCom errcode, or "
            "network / timeout), by messenger and code",
            ["messenger", "code"],
            registry=self.registry,
        )
        self.instance = Info("desk_instance", "Which instance this is", registry=self.registry)
        self.instance.info({"instance": instance})
        self._database = _FromDatabase()
        self.registry.register(self._database)

    def handled(self, channel: str) -> None:
        """An update (a callback, a pulled message) was committed or set aside."""
        self.updates_handled.labels(channel).inc()

    def answered_first(self, seconds: float) -> None:
        self.first_answer.observe(max(seconds, 0.0))

    def messenger_error(self, messenger: str, code: str | int) -> None:
        self.messenger_errors.labels(messenger, str(code)).inc()

    async def refresh(self, new_uow: NewUnitOfWork) -> None:
        """Read what the database knows (a read-only unit of work: it holds nobody up)."""
        async with new_uow(read_only=True) as uow:
            figures = Figures(
                outbox_waiting=await uow.outbox.pending_count(),
                open_tickets=await uow.tickets.count_active(),
                deadlines_missed=await uow.tickets.missed_deadlines(),
            )
        self._database.figures = figures

    def forget_figures(self) -> None:
        """The database did not answer: its figures are left out rather than shown stale."""
        self._database.figures = None

    def text(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class Health:
    """What `GET /healthz` asks: the database (`SELECT 1`), Redis where the desk uses it, and
    whether the instance is stopping."""

    instance: str
    database: Ping
    redis: Ping | None = None
    stopping: Callable[[], bool] = lambda: False
    timeout: float = HEALTH_TIMEOUT

    async def check(self) -> tuple[int, dict[str, str]]:
        """The status code and the body."""
        if self.stopping():
            return 503, {"status": "stopping", "instance": self.instance}
        body = {"status": "ok", "instance": self.instance}
        for name, ping in (("database", self.database), ("redis", self.redis)):
            if ping is None:
                body[name] = "not used"
                continue
            try:
                await asyncio.wait_for(ping(), timeout=self.timeout)
            except Exception as exc:  # whatever it is, the instance cannot work: say so
                reason = f"{name}: {short_reason(exc, self.timeout)}"
                logger.warning("Health check failed: %s", reason)
                return 503, {"status": "unavailable", "instance": self.instance, "reason": reason}
            body[name] = "ok"
        return 200, body


def short_reason(exc: BaseException, timeout: float = HEALTH_TIMEOUT) -> str:
    """The driver's own words (its first line), without SQLAlchemy's wrapping and link; the
    kind of error where there are none. Never the URL: the drivers' messages hold none."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    original = getattr(exc, "orig", None) or exc  # SQLAlchemy's DBAPIError wraps the driver's
    words = str(original).strip().splitlines()
    text = words[0] if words else ""
    if "://" in text:  # a URL may hold a password
        text = ""
    kind = type(original).__name__
    return f"{kind}: {text}"[:REASON_LIMIT] if text else kind


def routes(metrics: Metrics, health: Health, new_uow: NewUnitOfWork) -> Routes:
    """`GET /metrics` and `GET /healthz`, for `HttpServer.add_routes`."""

    async def metrics_asked(request: web.Request) -> web.Response:
        """The metrics, the database's figures read just now (left out if it does not
        answer: the counters still say what they know)."""
        try:
            await asyncio.wait_for(metrics.refresh(new_uow), timeout=HEALTH_TIMEOUT * 5)
        except Exception as exc:
            metrics.forget_figures()
            logger.warning("Metrics: the database's figures not read (%s)", short_reason(exc))
        return web.Response(body=metrics.text(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health_asked(request: web.Request) -> web.Response:
        """200 when the instance can work, 503 with the reason when not."""
        status, body = await health.check()
        return web.json_response(body, status=status)

    def add(app: web.Application) -> None:
        app.router.add_get("/metrics", metrics_asked)
        app.router.add_get("/healthz", health_asked)

    return add
