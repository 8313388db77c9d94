"""The manager's dashboard, its JSON calls on the instance's server (`bot.web.HttpServer`).

`POST /dashboard/api/session` takes what the messenger hands the page (Telegram's `initData`)
and asks the messenger's sign-in who that is and whether they are a manager: a manager gets a
short-lived signed token, anyone else 403 with the reason and a line in their language. Every
other call carries the token in `Authorization: Bearer …` (never a cookie: Telegram Web runs a
Mini App in a cross-site frame, where cookies may be blocked) and answers 403 without a valid
one. Nothing here writes: each call reads in a read-only unit of work."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot.dashboard_page import DashboardPage
from bot.domain.insight import Figures, PeriodError, TimelineEntry
from bot.domain.tickets import Ticket
from handlers import manager as manager_cases
from handlers.context import Desk
from storage.uow import NewUnitOfWork

logger = logging.getLogger(__name__)

TOKEN_LIFETIME = timedelta(hours=1)
MAX_SIGN_IN = 16 * 1024  # an initData is a few hundred bytes


@dataclass(frozen=True)
class Visitor:
    """A manager the messenger vouched for: their id there, their language (zh | en), and the
    messenger (`via`: whose sign-in vouched, and is asked again at each call)."""

    id: str
    language: str
    via: str = "telegram"


class Refused(Exception):
    """No data for this caller; `reason` is the JSON's `error`, `language` the one to say it in
    (None: the desk's)."""

    def __init__(self, reason: str, language: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.language = language


class SignInUnavailable(Exception):
    """The messenger could not be asked who this is (its API away for now): try again."""


# what the messenger hands the page -> the manager who opened it (or Refused)
SignIn = Callable[[str], Awaitable[Visitor]]
DEFAULT_VIA = "telegram"  # `?via=` left out: Telegram's Mini App


def derive_key(secret: str, purpose: str = "dashboard-session") -> bytes:
    """A key of its own for one purpose, from a secret the desk already keeps (the bot's token):
    a token signed with it proves nothing anywhere else."""
    return hmac.new(purpose.encode(), secret.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionTokens:
    """`payload.mac`: the payload (who, their language, when it expires) in base64url JSON, the
    mac HMAC-SHA256 over it with the session key."""

    def __init__(self, key: bytes, lifetime: timedelta = TOKEN_LIFETIME) -> None:
        self._key = key
        self.lifetime = lifetime

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def issue(self, visitor: Visitor, now: datetime) -> str:
        expires = int((now + self.lifetime).timestamp())
        payload = {"u": visitor.id, "l": visitor.language, "v": visitor.via, "e": expires}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def read(self, token: str, now: datetime) -> Visitor:
        """Who the token was issued to; Refused `bad_token` (not ours, or altered) or
        `expired_token`."""
        body, _, mac = token.partition(".")
        if not mac or not hmac.compare_digest(self._mac(body).encode(), mac.encode()):
            raise Refused("bad_token")
        try:
            payload = json.loads(_unb64(body))
            visitor = Visitor(str(payload["u"]), str(payload["l"]), str(payload["v"]))
            expires = int(payload["e"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise Refused("bad_token") from None
        if now.timestamp() >= expires:
            raise Refused("expired_token", visitor.language)
        return visitor


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The request's body, or None where it is longer than `limit` (said in its header, or
    found while reading a chunked one): no more of it is read than that."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(limit + 1):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def _not_kept(request: web.Request, response: web.StreamResponse) -> None:
    """The JSON calls' answers are one manager's, as of now: no cache (the browser's, a proxy's)
    keeps them."""
    if request.path.startswith("/dashboard/api/"):
        response.headers["Cache-Control"] = "no-store"


class Dashboard:
    """The dashboard's JSON calls. `sign_in`: each messenger's, by the name the page gives in
    `?via=` (`telegram`: the Mini App's initData checked; `wecom`: the web sign-in's code
    asked about); one alone is Telegram's."""

    def __init__(
        self,
        desk: Desk,
        new_uow: NewUnitOfWork,
        clock: Callable[[], datetime],
        sign_in: SignIn | Mapping[str, SignIn],
        tokens: SessionTokens,
    ) -> None:
        self.desk = desk
        self.new_uow = new_uow
        self.clock = clock
        self.sign_ins = dict(sign_in) if isinstance(sign_in, Mapping) else {DEFAULT_VIA: sign_in}
        self.tokens = tokens

    def add_routes(self, app: web.Application) -> None:
        DashboardPage().add_routes(app)  # the page itself: HTML, script, style, no data
        app.router.add_post("/dashboard/api/session", self._session)
        app.router.add_get("/dashboard/api/backlog", self._backlog)
        app.router.add_get("/dashboard/api/figures", self._figures)
        app.router.add_get("/dashboard/api/tickets/{reference}", self._ticket)
        app.on_response_prepare.append(_not_kept)

    def _refused(self, refused: Refused) -> web.Response:
        language = refused.language or self.desk.staff_language
        message = self.desk.render(language, "dashboard/refused.txt", reason=refused.reason)
        return web.json_response({"error": refused.reason, "message": message}, status=403)

    async def _visitor(self, request: web.Request) -> Visitor:
        """The manager the call's token names, while they still are one: a manager taken out
        of MANAGER_IDS (or the group's administrators) sees no more from the next call on."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused("no_token")
        visitor = self.tokens.read(token.strip(), self.clock())
        sign_in = self.sign_ins.get(visitor.via)
        still_manager = getattr(sign_in, "still_manager", None)
        if sign_in is None or (still_manager is not None and not await still_manager(visitor.id)):
            raise Refused("not_manager", visitor.language)
        return visitor

    async def _session(self, request: web.Request) -> web.Response:
        """The body is what the messenger handed the page: Telegram's initData, or (`?via=
        wecom`) the code WeCom's web sign-in put in the page's link."""
        via = request.query.get("via", DEFAULT_VIA)
        try:
            sign_in = self.sign_ins.get(via)
            if sign_in is None:  # a messenger this desk does not have
                raise Refused("bad_via")
            raw = await _read_at_most(request, MAX_SIGN_IN)
            if raw is None:
                raise Refused("bad_hash" if via == DEFAULT_VIA else "bad_code")
            visitor = await sign_in(raw.decode("utf-8", errors="replace").strip())
        except Refused as refused:
            logger.info("A dashboard sign-in (%r) was refused: %s", via[:20], refused.reason)
            return self._refused(refused)
        except SignInUnavailable as exc:
            logger.warning("A dashboard sign-in (%r) waits for the messenger: %s", via, exc)
            language = self.desk.staff_language
            message = self.desk.render(language, "dashboard/refused.txt", reason="unavailable")
            return web.json_response({"error": "unavailable", "message": message}, status=503)
        token = self.tokens.issue(replace(visitor, via=via), self.clock())
        return web.json_response({"token": token, "language": visitor.language})

    async def _backlog(self, request: web.Request) -> web.Response:
        try:
            visitor = await self._visitor(request)
        except Refused as refused:
            return self._refused(refused)
        now = self.clock()
        async with self.new_uow(read_only=True) as uow:
            rows = await manager_cases.backlog(uow, now)
        show = manager_cases.labels_of(self.desk, visitor.language)
        tickets: list[dict[str, Any]] = [
            {
                "reference": row.reference,
                "category": row.category,
                "category_label": show("category", row.category) if row.category else "",
                "severity": row.severity,
                "severity_label": show("severity", row.severity) if row.severity else "",
                "taken_by": row.taken_by,
                "age_hours": round(row.age_hours(now), 1),
                "next_deadline": row.next_due.isoformat() if row.next_due else None,
                "next_deadline_kind": row.next_kind,
                "overdue": row.overdue(now),
            }
            for row in rows
        ]
        return web.json_response({"now": now.isoformat(), "tickets": tickets})

    def _cannot_answer(
        self, visitor: Visitor, reason: str, status: int, **context: Any
    ) -> web.Response:
        """A question the desk cannot answer (a bad period, no such ticket), said in the
        visitor's language."""
        message = self.desk.render(visitor.language, f"dashboard/{reason}.txt", **context)
        return web.json_response({"error": reason, "message": message}, status=status)

    async def _figures(self, request: web.Request) -> web.Response:
        try:
            visitor = await self._visitor(request)
        except Refused as refused:
            return self._refused(refused)
        now = self.clock()
        asked = request.query.get("period", "")
        try:
            async with self.new_uow(read_only=True) as uow:
                figures = await manager_cases.figures(uow, self.desk, asked, now)
        except PeriodError:
            return self._cannot_answer(visitor, "bad_period", 400, given=asked)
        show = manager_cases.labels_of(self.desk, visitor.language)
        return web.json_response(figures_json(figures, show, self.desk.sla.first_response))

    async def _ticket(self, request: web.Request) -> web.Response:
        try:
            visitor = await self._visitor(request)
        except Refused as refused:
            return self._refused(refused)
        asked = request.match_info["reference"]
        async with self.new_uow(read_only=True) as uow:
            found = await manager_cases.ticket_timeline(uow, asked)
        if found is None:
            return self._cannot_answer(visitor, "no_ticket", 404, given=asked)
        ticket, entries = found
        show = manager_cases.labels_of(self.desk, visitor.language)
        return web.json_response(timeline_json(ticket, entries, show))


# -- the JSON the page reads (README: The dashboard, What the page reads) ------------------------

Show = Callable[[str, str], str]  # (column, stored key) -> its label in the visitor's language


def _shown(show: Show, column: str, key: str) -> str:
    return show(column, key) if key else ""


def _minutes(seconds: float | None, per: float) -> float | None:
    return None if seconds is None else round(seconds / per, 1)


def figures_json(figures: Figures, show: Show, first_response: timedelta) -> dict[str, Any]:
    """The dashboard's figures of a period, labels in the visitor's language; `first_response`
    is the time a first answer is on time within (SLA_FIRST_RESPONSE)."""
    summary = figures.summary
    weeks = figures.weeks
    order = [key for key, _ in summary.by_category]
    heat = [
        {
            "key": key,
            "label": _shown(show, "category", key),
            "counts": [week.by_category.get(key, 0) for week in weeks],
        }
        for key in order
    ]
    categories, stores = figures.stores()
    return {
        "period": {
            "label": summary.period.label,
            "start": summary.period.start.isoformat(),
            "end": summary.period.end.isoformat(),
            "timezone": summary.period.timezone,  # the shop's: its weeks and months
        },
        "total": summary.total,
        "heat": {
            "weeks": [week.monday.isoformat() for week in weeks],
            "rows": heat,
            "max": max((n for row in heat for n in row["counts"]), default=0),
        },
        "stores": {
            "categories": [{"key": k, "label": _shown(show, "category", k)} for k in categories],
            "rows": [{"store": store, "counts": counts} for store, counts in stores],
            "max": max((n for _, counts in stores for n in counts), default=0),
        }
        if stores
        else None,
        "on_time": {
            "weeks": [week.monday.isoformat() for week in weeks],
            "answered": [week.answered for week in weeks],
            "in_time": [week.answered_in_time for week in weeks],
            "share": [week.sla_hit for week in weeks],
            "within_minutes": round(first_response.total_seconds() / 60),
        },
        "first_answer_median_minutes": _minutes(summary.first_answer_median, 60),
        "resolve_median_hours": _minutes(summary.resolution_median, 3600),
        "satisfaction": {
            "average": summary.satisfaction_average,
            "answers": summary.satisfaction_answers,
            "scores": {str(n): count for n, count in sorted(figures.satisfaction_scores.items())},
        },
        "backlog": summary.backlog,
        "repeats": {
            "products": [{"name": n, "count": c} for n, c in summary.top_products],
            "batches": [{"name": n, "count": c} for n, c in figures.top_batches],
            "root_causes": [
                {"key": k, "label": _shown(show, "root_cause", k), "count": c}
                for k, c in figures.root_causes
            ],
        },
    }


def timeline_json(ticket: Ticket, entries: list[TimelineEntry], show: Show) -> dict[str, Any]:
    """A ticket's whole record, as `/ticket` shows it, labels in the visitor's language."""
    return {
        "reference": ticket.reference,
        "category_label": _shown(show, "category", ticket.category or ""),
        "status_label": show("result", ticket.status.value),
        "severity_label": _shown(show, "severity", ticket.tier or ticket.severity or ""),
        "customer": ticket.customer_name,
        "entries": [
            {
                "at": entry.at.isoformat(),
                "kind": entry.kind,
                "who": entry.who,
                "role": entry.role,
                "what": show("timeline", entry.what),
                "text": entry.text,
                "direction": entry.direction,
            }
            for entry in entries
        ],
    }
