"""A small round-robin HTTP proxy for tests: several desk instances behind one address, as a
load balancer puts them.

Each request goes to the next upstream in turn, passed through as it came (method, path,
query, headers with the webhook's secret among them, body); the upstream's answer comes back.
An upstream that refuses the connection is skipped for the next one, like a load balancer with
passive health checks; when all refuse, 502. With `mirror=True` each request goes to every
upstream at once (the same update delivered to two instances) and the answer is the first 2xx
among theirs, in the upstreams' order.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

# what belongs to one connection, not to the request (RFC 9110 7.6.1), and what aiohttp
# recomputes for the body it passes on (which both sides have already decompressed)
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-encoding",
}


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: CIMultiDict[str]


class RoundRobin:
    """The proxy: `await start()` (or `async with`), then send to `.url`."""

    def __init__(self, upstreams: list[str], mirror: bool = False, timeout: float = 30.0) -> None:
        self.upstreams = [u.rstrip("/") for u in upstreams]
        self.mirror = mirror
        self.timeout = timeout
        self.url = ""
        self.requests: Counter[str] = Counter()  # requests each upstream answered
        self.refused: Counter[str] = Counter()  # connections each upstream refused
        self._next = 0
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    def set_upstreams(self, upstreams: list[str]) -> None:
        """Serve from these from the next request on (an instance added, or taken away)."""
        self.upstreams = [u.rstrip("/") for u in upstreams]
        self._next = 0

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # noqa: SLF001 - the port the system gave
        assert server is not None and server.sockets
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    async def __aenter__(self) -> RoundRobin:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _turn(self) -> list[str]:
        """The upstreams in the order this request tries them: the next one first."""
        upstreams = list(self.upstreams)
        if not upstreams:
            return []
        start = self._next % len(upstreams)
        self._next = start + 1
        return upstreams[start:] + upstreams[:start]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP
        )
        if self.mirror:
            upstreams = list(self.upstreams)
            answers = await asyncio.gather(
                *(self._send(u, request, headers, body) for u in upstreams)
            )
            answered = [a for a in answers if a is not None]
            chosen = next((a for a in answered if 200 <= a.status < 300), None)
            return self._respond(chosen or (answered[0] if answered else None))
        for upstream in self._turn():
            try:
                answer = await self._send(upstream, request, headers, body)
            except _Refused:
                continue
            return self._respond(answer)
        return self._respond(None)

    async def _send(
        self, upstream: str, request: web.Request, headers: CIMultiDict[str], body: bytes
    ) -> _Answer | None:
        """The upstream's answer; _Refused when it refused the connection (nothing was sent:
        safe to try another), None when it failed after that (a load balancer answers 502
        and does not send a POST twice)."""
        assert self._client is not None
        try:
            async with self._client.request(
                request.method,
                upstream + request.raw_path,
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as response:
                answer = _Answer(
                    response.status,
                    await response.read(),
                    CIMultiDict(
                        (k, v) for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP
                    ),
                )
        except aiohttp.ClientConnectorError:
            self.refused[upstream] += 1
            if self.mirror:
                return None
            raise _Refused from None
        except (aiohttp.ClientError, TimeoutError):
            self.requests[upstream] += 1
            return None
        self.requests[upstream] += 1
        return answer

    @staticmethod
    def _respond(answer: _Answer | None) -> web.Response:
        if answer is None:
            return web.Response(status=502, text="no upstream answered")
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


class _Refused(Exception):
    """An upstream refused the connection."""
