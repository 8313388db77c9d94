"""A small HTTP server of a test's own (a shop's order endpoint, a callback receiver), on a
free local port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 at a free port until the block ends; gives its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)  # not the desk's log
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server  # noqa: SLF001 - the port the system gave
    assert server is not None and server.sockets
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()
