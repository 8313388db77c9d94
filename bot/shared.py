"""What several instances of the desk share, and only that: the messengers' rate windows and
short locks. The durable truth (tickets, the outbox, deadlines) stays in the database.

Two implementations of one port: `LocalShared` when `REDIS_URL` is not set (one instance: plain
asyncio, and no shared windows at all, so the default set-up pays nothing), `RedisShared` when it
is (redis.asyncio). `build_shared(settings)` chooses.

The windows: why not `limits`
-----------------------------
Telegram's windows count a message from the moment it leaves until Telegram's answer has come
back plus the period (see `bot.channels.telegram.limiter.Window`): counted only from the moment
it leaves, a shared limiter let 429s through at 27 messages a second on a loaded machine, because
a request that is slow on the way arrives inside a later second than the one it was counted in.
`limits` (its moving window on Redis) cannot say that: a hit is a timestamp pushed onto a list
at the moment of the hit, with no place held while the request is in flight and no way to date
it again when the answer comes; one hit is one limit, so a send's places in the bot's window and
in its chat's cannot be taken together (a send refused by its chat would still have used a place
of the bot's); and a window cannot be closed for Telegram's `retry_after`. So the windows here
are a sorted set per window (a member per send: held, with a lease, while it is in flight; then
dated by its answer), checked and taken for all of a send's windows at once by one Lua script,
on Redis's own clock (TIME), the same for every instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # redis is imported only where REDIS_URL is set
    from redis.asyncio import Redis
    from redis.asyncio.lock import Lock

    from bot.config import Settings

logger = logging.getLogger(__name__)

# a send with no answer by then (its instance died) counts as though answered then: it holds its
# place for this long and its period on top (it may have arrived), then frees it
IN_FLIGHT_FOR = 20.0
PENALTY_KEPT = 3600.0  # a window lowered by a 429 stays lowered this long after the last one


@dataclass(frozen=True)
class Place:
    """One window a send counts in: at most `limit` sends in any `period` seconds."""

    key: str
    limit: int
    period: float


@dataclass(frozen=True)
class Refused:
    """Not now: `place` (an index into the places asked for) is full or closed for `wait`
    seconds (None: until a send in flight is answered)."""

    place: int
    wait: float | None


class Windows(Protocol):
    """Rate windows that hold for every instance together."""

    async def try_take(self, places: Sequence[Place], spare: int = 0) -> str | Refused:
        """A place in each window at once, if each has more than `spare` free: the send's
        token (for `done` or `release`); otherwise which window refused, and for how long."""
        ...

    async def take(
        self,
        places: Sequence[Place],
        spare: int = 0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> str:
        """Wait until `try_take` gives the places."""
        ...

    async def done(self, token: str, places: Sequence[Place]) -> None:
        """The send was answered: its places count from now for their periods."""
        ...

    async def release(self, token: str, places: Sequence[Place]) -> None:
        """The send never went: its places are free again."""
        ...

    async def block(self, place: Place, seconds: float) -> None:
        """The messenger said "too many" (429): nobody sends in this window for `seconds`, and
        it holds fewer for a while."""
        ...


class Shared(Protocol):
    """The port: short locks, the rate windows (None: one instance, counted in-process)."""

    windows: Windows | None

    def lock(
        self, name: str, ttl: float = 30.0, wait: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Held by one holder at a time (across instances), until the block ends. Blocks
        until held; `wait`: at most this many seconds, then LockBusy (a TimeoutError)."""
        ...

    async def ping(self) -> None:
        """Raises if what is shared cannot be reached (health)."""
        ...

    async def close(self) -> None: ...


class LockBusy(TimeoutError):
    """A lock was not free within the wait asked for."""


@dataclass
class _Held:
    lock: asyncio.Lock
    users: int = 0


class LocalShared:
    """One instance: nothing to share. Locks are asyncio locks, one per name while in use."""

    windows: Windows | None = None

    def __init__(self) -> None:
        self._locks: dict[str, _Held] = {}

    @contextlib.asynccontextmanager
    async def lock(
        self, name: str, ttl: float = 30.0, wait: float | None = None
    ) -> AsyncIterator[None]:
        held = self._locks.get(name)
        if held is None:
            held = self._locks[name] = _Held(asyncio.Lock())
        held.users += 1
        try:
            try:
                async with asyncio.timeout(wait):
                    await held.lock.acquire()
            except TimeoutError as exc:
                raise LockBusy(f"lock {name} not free within {wait}s") from exc
            try:
                yield
            finally:
                held.lock.release()
        finally:
            held.users -= 1
            if not held.users:  # nobody holds or waits: forget it (names come and go)
                del self._locks[name]

    @property
    def names(self) -> int:
        """How many locks are kept now (held or waited for)."""
        return len(self._locks)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisShared:
    """Several instances: the locks and the windows in Redis, under `prefix`."""

    def __init__(
        self,
        url: str,
        prefix: str = "desk:",
        clock: Callable[[], float] | None = None,
    ) -> None:
        from redis.asyncio import Redis

        self.redis: Redis = Redis.from_url(  # never waits forever on a Redis that went away
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )
        self.prefix = prefix
        self.windows = RedisWindows(self.redis, f"{prefix}w:", clock)

    @contextlib.asynccontextmanager
    async def lock(
        self, name: str, ttl: float = 30.0, wait: float | None = None
    ) -> AsyncIterator[None]:
        from redis.asyncio.lock import Lock
        from redis.exceptions import LockError

        lock = Lock(
            self.redis,
            f"{self.prefix}lock:{name}",
            timeout=ttl,
            sleep=min(0.02, ttl / 10),
            blocking_timeout=wait,
            thread_local=False,
        )
        if not await lock.acquire():
            raise LockBusy(f"lock {name} not free within {wait}s")
        renewing = asyncio.create_task(self._renew(lock, name, ttl))
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            try:
                await lock.release()
            except LockError:  # it expired (renewal failed): someone else may hold it now
                logger.warning("Lock %s was lost before its holder let it go", name)

    @staticmethod
    async def _renew(lock: Lock, name: str, ttl: float) -> None:
        """Keep the lock while its holder works (long work outlives `ttl`). Work that outlives
        it is unusual (the others wait for it): the log says so, and for how long."""
        from redis.exceptions import LockError

        loop = asyncio.get_running_loop()
        taken = loop.time()
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await lock.extend(ttl, replace_ttl=True)
                held = loop.time() - taken
                if held > ttl:
                    logger.warning("Lock %s held for %.0fs so far; still at work", name, held)
            except LockError:
                logger.error("Lock %s was lost while held (Redis dropped it)", name)
                return
            except Exception:  # Redis away for a moment: the lease still runs, try again
                logger.warning("Lock %s not renewed; trying again", name, exc_info=True)

    async def ping(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        await self.redis.aclose()


class Updates:
    """What the shared windows must hear (an answer, a 429), told in the background: a send is
    not held up by Redis (an answer dated a moment late is on the safe side). `done` runs after
    each, whether it went or not."""

    def __init__(self, what: str, done: Callable[[], None] = lambda: None) -> None:
        self.what = what
        self.done = done
        self._tasks: set[asyncio.Task[None]] = set()

    def tell(self, update: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(update)
        self._tasks.add(task)
        task.add_done_callback(self._told)

    def _told(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("%s not updated: %s", self.what, task.exception())
        self.done()

    async def settle(self) -> None:
        """Wait until the shared windows have heard of everything told so far."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def build_shared(settings: Settings) -> Shared:
    """Redis where `REDIS_URL` is set; otherwise this instance alone."""
    if settings.redis_url is None:
        return LocalShared()
    return RedisShared(
        settings.redis_url.get_secret_value(), prefix=f"desk:{namespace(settings)}:"
    )


def namespace(settings: Settings) -> str:
    """Whose desk: its bot's id (a token's part before the colon, no secret), or its WeCom
    corp and app. Two shops on one Redis never share a window or a lock."""
    if settings.bot_token is not None:
        return "tg" + settings.bot_token.get_secret_value().partition(":")[0]
    return f"wecom:{settings.wecom_corp_id}:{settings.wecom_agent_id or settings.wecom_open_kfid}"


# -- the windows in Redis -------------------------------------------------------------------
# Each window is three keys: `sent` (a sorted set: send -> when it stops counting, its answer's
# time + the period), `flight` (send -> when it stops counting if never answered: its lease and
# the period) and `state` (a
# hash: `until`, closed by a 429 until then; `cap`, the limit lowered by 429s).

_NOW = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
"""

# KEYS: sent, flight, state for each window. ARGV: now ('' for Redis's), token, lease, spare,
# then limit and period for each window. Returns {0} when taken, else {window, wait} (wait in
# seconds as a string; '-1': until a send in flight is answered).
_TAKE = (
    _NOW
    + """
local token, lease, need = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]) + 1
local n = #KEYS / 3
for i = 1, n do
  local sent, flight, state = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local limit = tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', sent, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', flight, '-inf', now)
  local closed = tonumber(redis.call('HGET', state, 'until') or 0)
  if closed > now then
    return {i, string.format('%.6f', closed - now)}
  end
  local cap = tonumber(redis.call('HGET', state, 'cap') or limit)
  if cap < limit then limit = cap end
  local counted = redis.call('ZCARD', sent)
  local over = counted + redis.call('ZCARD', flight) + need - limit
  if over > 0 then
    if over > counted then return {i, '-1'} end
    local at = redis.call('ZRANGE', sent, over - 1, over - 1, 'WITHSCORES')
    return {i, string.format('%.6f', tonumber(at[2]) - now)}
  end
end
for i = 1, n do
  local held = lease + tonumber(ARGV[4 + 2 * i])
  redis.call('ZADD', KEYS[3 * i - 1], now + held, token)
  redis.call('PEXPIRE', KEYS[3 * i - 1], math.ceil(held * 1000))
end
return {0}
"""
)

# KEYS: sent, flight for each window. ARGV: now, token, then the period of each window.
_DONE = (
    _NOW
    + """
for i = 1, #KEYS / 2 do
  local period = tonumber(ARGV[2 + i])
  redis.call('ZREM', KEYS[2 * i], ARGV[2])
  redis.call('ZADD', KEYS[2 * i - 1], now + period, ARGV[2])
  redis.call('PEXPIRE', KEYS[2 * i - 1], math.ceil(period * 1000))
end
return 0
"""
)

# KEYS: state. ARGV: now, seconds, limit, how long the lowered limit is kept.
_BLOCK = (
    _NOW
    + """
local untl = now + tonumber(ARGV[2])
if untl > tonumber(redis.call('HGET', KEYS[1], 'until') or 0) then
  redis.call('HSET', KEYS[1], 'until', string.format('%.6f', untl))
end
local limit = tonumber(ARGV[3])
local cap = tonumber(redis.call('HGET', KEYS[1], 'cap') or limit)
if cap > limit then cap = limit end
redis.call('HSET', KEYS[1], 'cap', math.max(1, math.floor(cap * 0.8)))
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(tonumber(ARGV[2]), tonumber(ARGV[4])) * 1000))
return 0
"""
)


class RedisWindows:
    """`Windows` in Redis. `clock`: None for Redis's own (every instance on one clock); a test
    may pass one that it moves on."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        clock: Callable[[], float] | None = None,
        in_flight_for: float = IN_FLIGHT_FOR,
        poll: float = 0.02,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self.in_flight_for = in_flight_for
        self.poll = poll  # how soon to ask again when only another instance's answer frees one
        self._take: Any = redis.register_script(_TAKE)
        self._done: Any = redis.register_script(_DONE)
        self._block: Any = redis.register_script(_BLOCK)
        self._instance = uuid.uuid4().hex[:12]
        self._seq = itertools.count()

    def _now(self) -> str:
        return "" if self.clock is None else repr(self.clock())

    def _keys(self, place: Place) -> tuple[str, str, str]:
        base = f"{self.prefix}{place.key}"
        return f"{base}:sent", f"{base}:flight", f"{base}:state"

    async def try_take(self, places: Sequence[Place], spare: int = 0) -> str | Refused:
        token = f"{self._instance}:{next(self._seq)}"
        keys = [key for place in places for key in self._keys(place)]
        args: list[Any] = [self._now(), token, self.in_flight_for, spare]
        for place in places:
            args += [place.limit, place.period]
        answer = await self._take(keys=keys, args=args)
        if int(answer[0]) == 0:
            return token
        wait = float(answer[1])
        return Refused(int(answer[0]) - 1, None if wait < 0 else wait)

    async def take(
        self,
        places: Sequence[Place],
        spare: int = 0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> str:
        while True:
            got = await self.try_take(places, spare)
            if isinstance(got, str):
                return got
            await sleep(self.poll if got.wait is None else max(got.wait, 0.001))

    async def done(self, token: str, places: Sequence[Place]) -> None:
        keys = [key for place in places for key in self._keys(place)[:2]]
        await self._done(keys=keys, args=[self._now(), token, *(p.period for p in places)])

    async def release(self, token: str, places: Sequence[Place]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for place in places:
                pipe.zrem(self._keys(place)[1], token)
            await pipe.execute()

    async def block(self, place: Place, seconds: float) -> None:
        keys = [self._keys(place)[2]]
        await self._block(keys=keys, args=[self._now(), seconds, place.limit, PENALTY_KEPT])
