"""WeCom's proof that the desk's domain is the shop's.

Before an app may sign members in on a domain (网页授权及JS-SDK → 可信域名), WeCom has the admin
download a file named `WW_verify_….txt` and checks that the domain serves it at its root. The
desk serves that one file, as it was downloaded (WECOM_VERIFY_FILE), and nothing else there."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.web import Routes


def verify_file_routes(path: Path) -> Routes:
    """`GET /<the file's name>`: its bytes, as plain text (read once, at start)."""
    body = path.read_bytes()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    def add(app: web.Application) -> None:
        app.router.add_get(f"/{path.name}", serve)

    return add
