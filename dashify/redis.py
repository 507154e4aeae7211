"""
Redis clients for the purposes that bypass Django's cache API.

Clients are cached per URL (so ``override_settings`` picks up a new one)
and, for asyncio, per event loop: a redis.asyncio connection belongs to the
loop that opened it, and tests run each case in a loop of its own.
"""

import asyncio
import weakref
from functools import lru_cache
from typing import TypedDict

import redis
import redis.asyncio
from django.conf import settings

_LoopClients = dict[str, redis.asyncio.Redis]
_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients]" = (
    weakref.WeakKeyDictionary()
)


class _Options(TypedDict):
    socket_timeout: float
    socket_connect_timeout: float
    health_check_interval: int


def _options() -> _Options:
    timeout = settings.DASHIFY_REDIS_TIMEOUT
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
    }


@lru_cache(maxsize=16)
def _sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, **_options())


def get_client(purpose: str) -> redis.Redis:
    """Return the shared synchronous client for a purpose ("tokens", ...)."""
    return client_for_url(settings.DASHIFY_REDIS_URLS[purpose])


def client_for_url(url: str) -> redis.Redis:
    return _sync_client(url)


def aget_client(purpose: str) -> redis.asyncio.Redis:
    """Return the asyncio client for a purpose, bound to the running loop."""
    return aclient_for_url(settings.DASHIFY_REDIS_URLS[purpose])


def aclient_for_url(url: str) -> redis.asyncio.Redis:
    """Return the asyncio client for a URL, bound to the running loop."""
    per_loop = _async_clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(url)
    if client is None:
        # A connect storm needs more connections at once than the pool
        # holds; wait briefly for one instead of failing the handshake as
        # if Redis were down (redis-py's default pool raises at once).
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=settings.DASHIFY_REDIS_MAX_CONNECTIONS,
            timeout=settings.DASHIFY_REDIS_POOL_WAIT,
            **_options(),
        )
        client = per_loop[url] = redis.asyncio.Redis(connection_pool=pool)
    return client


def key(*parts: object) -> str:
    """Build a Redis key under the configured prefix."""
    return ":".join([settings.DASHIFY_REDIS_KEY_PREFIX, *map(str, parts)])
