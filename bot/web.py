"""The instance's one HTTP server (aiohttp): on `HTTP_HOST:HTTP_PORT` it serves the Telegram
webhook (webhook mode), WeCom's callbacks, `GET /healthz` and `GET /metrics`. Each part adds its
own routes before the server starts; the server knows none of them."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

logger = logging.getLogger(__name__)

Routes = Callable[[web.Application], None]


class HttpServer:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.wanted_port = port
        self.app = web.Application(client_max_size=4 * 1024**2)
        self.port: int | None = None  # the bound port (HTTP_PORT=0: the system's choice)
        self._runner: web.AppRunner | None = None
        self.draining = False  # the instance is stopping: /healthz says 503 from now on

    def drain(self) -> None:
        """The instance is stopping: a load balancer asking /healthz is told at once."""
        self.draining = True

    def add_routes(self, routes: Routes) -> None:
        routes(self.app)

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.wanted_port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # noqa: SLF001 - the bound port
        self.port = sockets[0].getsockname()[1] if sockets else self.wanted_port
        logger.info("Serving HTTP on %s:%s", self.host, self.port)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
