"""The manager's dashboard page, served by the desk itself: `GET /dashboard` (plain HTML, no data
in it) and `GET /dashboard/static/<file>` (its script, its style and the vendored charting
library, uPlot: vendor/README.md). Nothing the page loads comes from anywhere else.

The page reads what the messenger put in its URL (Telegram's `#tgWebAppData=…`, WeCom's
`?via=wecom&code=…`), signs in with `POST /dashboard/api/session` and sends the token it gets
with every data call (`bot.dashboard`). Its URLs are relative (`dashboard/static/…`,
`dashboard/api/…`), so that a desk behind a proxy under a path (`PUBLIC_URL` with one) works.

Only the files named in `ASSETS` are served, from memory, read once: no request names a path on
disk. Each asset's URL in the page carries a hash of its content (`?v=…`); asked for with the
current hash it may be cached for a year, since a new version has a new URL; the page itself is
revalidated on every load (`no-cache`, with an ETag), so it always names the current assets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).parent

# the files the page loads (relative to this folder) and their content types (all UTF-8)
ASSETS = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "vendor/uplot/uPlot.iife.min.js": "text/javascript",
    "vendor/uplot/uPlot.min.css": "text/css",
}

FOREVER = "public, max-age=31536000, immutable"  # a URL with the content's hash in it
REVALIDATE = "no-cache"  # keep it, but ask (If-None-Match) before each use

# the page runs only what the desk serves: no inline script, no other origin; and it is framed
# only by itself and Telegram Web (which runs a Mini App in a frame); Telegram's apps and WeCom
# open it in a web view of their own, which no frame rule touches
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'self' https://web.telegram.org"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # WeCom's one-time code is in the page's query
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    version: str  # a hash of the body: the ETag, and `?v=` in the page's URLs

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Asset:
        return cls(body, content_type, hashlib.sha256(body).hexdigest()[:16])


def _fresh(request: web.Request, asset: Asset) -> bool:
    """The browser already holds this version (If-None-Match names its ETag)."""
    given = request.headers.get("If-None-Match", "")
    return any(tag.strip().removeprefix("W/") == f'"{asset.version}"' for tag in given.split(","))


def _answer(request: web.Request, asset: Asset, cache: str) -> web.StreamResponse:
    # a weak ETag, and Vary: the bytes sent differ with the encoding, the content does not
    headers = {
        "ETag": f'W/"{asset.version}"',
        "Cache-Control": cache,
        "Vary": "Accept-Encoding",
        **SECURITY_HEADERS,
    }
    if _fresh(request, asset):
        return web.Response(status=304, headers=headers)
    response = web.Response(
        body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers
    )
    response.enable_compression()  # gzip where the browser accepts it (uPlot is 50 kB)
    return response


class DashboardPage:
    """The page and its assets, read from this folder once."""

    def __init__(self, folder: Path = HERE) -> None:
        self.assets = {
            name: Asset.of((folder / name).read_bytes(), kind) for name, kind in ASSETS.items()
        }
        html = (folder / "index.html").read_text("utf-8")
        for name in self.assets:
            html = html.replace(f'"dashboard/static/{name}"', f'"{self.url(name)}"')
        self.index = Asset.of(html.encode(), "text/html")

    def url(self, name: str) -> str:
        """The asset's URL as the page names it (relative to the page, with its version)."""
        return f"dashboard/static/{name}?v={self.assets[name].version}"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/dashboard", self._page)
        app.router.add_get("/dashboard/static/{name:.+}", self._static)

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return _answer(request, self.index, REVALIDATE)

    async def _static(self, request: web.Request) -> web.StreamResponse:
        asset = self.assets.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound()
        current = request.query.get("v") == asset.version
        return _answer(request, asset, FOREVER if current else REVALIDATE)
