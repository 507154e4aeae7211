"""
Group fan-out for the dashboard sockets: a per-process registry of local
sockets per group, fed by one Redis pub/sub subscription per group and
process.

Why not the Channels layer's groups: channels-redis delivers one message
per member channel and Channels dispatches each through a worker-thread
hop, so an event for 1,000 sockets costs 1,000 deliveries and hops. Here
an event is serialised once by the publisher, published once, received
once per process, and written to each local socket without a hop.

Delivery to one socket never waits for another: each socket has a small
outbox drained by a task of its own, started only while frames are
pending. A socket whose outbox overflows is closed instead of holding
memory or delaying its group. That happens when the ASGI server applies
backpressure (uvicorn waits for a slow client's socket to drain); daphne
accepts every write at once and buffers it itself, so under daphne the
outbox fills only when events arrive faster than the process can write.

Pub/sub keeps nothing: an event published while a process is (re)joining
Redis is lost to that process. Clients therefore resynchronise when they
(re)join a room or board (chat.history, board.snapshot), and sockets check
their session's liveness on their own (realtime.consumers).
"""

import asyncio
import collections
import json
import logging
import weakref
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from dashify.redis import aclient_for_url, client_for_url

logger = logging.getLogger("dashify.realtime")

RECONNECT_PAUSE = 1.0


def _channel(group: str) -> str:
    return f"{settings.DASHIFY_REDIS_KEY_PREFIX}:fan:{group}"


def shard_of(group: str) -> int:
    """Index of the Redis server (in DASHIFY_FANOUT_REDIS_URLS) for a group."""
    return zlib.crc32(group.encode()) % len(settings.DASHIFY_FANOUT_REDIS_URLS)


def _url(group: str) -> str:
    return settings.DASHIFY_FANOUT_REDIS_URLS[shard_of(group)]


def encode(event: dict[str, Any]) -> str:
    # Non-ASCII as UTF-8, not \\u escapes: an emoji costs 4 bytes, not 12,
    # which keeps history and snapshots far from the frame size limit.
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def publish(group: str, event: dict[str, Any]) -> None:
    """Publish an event to a group from synchronous code (one PUBLISH)."""
    client_for_url(_url(group)).publish(_channel(group), encode(event))


async def apublish(group: str, event: dict[str, Any]) -> None:
    """Publish an event to a group from asynchronous code (one PUBLISH)."""
    await aclient_for_url(_url(group)).publish(_channel(group), encode(event))


class Member:
    """
    One socket's side of the hub. ``send`` writes a text frame to the
    socket; ``on_event`` sees every event before it is written and may
    return False to keep it from the client (for control events such as
    session.ended); ``on_overflow`` is called once when the outbox fills.
    """

    __slots__ = (
        "send",
        "on_event",
        "on_overflow",
        "outbox",
        "writer",
        "overflowed",
        "__weakref__",
    )

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        on_event: Callable[[dict[str, Any]], bool],
        on_overflow: Callable[[], None],
    ) -> None:
        self.send = send
        self.on_event = on_event
        self.on_overflow = on_overflow
        self.outbox: collections.deque[str] = collections.deque()
        self.writer: asyncio.Task[None] | None = None
        self.overflowed = False

    def deliver(self, frame: str, event: dict[str, Any]) -> None:
        if self.overflowed or not self.on_event(event):
            return
        if len(self.outbox) >= settings.DASHIFY_WS_SEND_BUFFER:
            self.overflowed = True
            self.outbox.clear()
            self.on_overflow()
            return
        self.outbox.append(frame)
        if self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self.outbox:
                await self.send(self.outbox.popleft())
        except Exception:
            # The socket went away mid-write; the consumer's disconnect
            # handler removes the member.
            self.outbox.clear()
        finally:
            self.writer = None


class Shard:
    """One Redis server's subscription, shared by the groups hashed to it."""

    def __init__(self, hub: "Hub", url: str) -> None:
        self.hub = hub
        self.url = url
        # Subscribe and unsubscribe decisions on one connection are
        # serialised, so a join racing the last leave of a group always
        # ends subscribed, and commands reach Redis in decision order.
        self.lock = asyncio.Lock()
        self.pubsub: PubSub | None = None
        self.reader: asyncio.Task[None] | None = None
        self.groups = 0

    def subscription(self) -> PubSub:
        if self.pubsub is None:
            self.pubsub = aclient_for_url(self.url).pubsub(
                ignore_subscribe_messages=True
            )
        return self.pubsub

    def ensure_reader(self) -> None:
        if self.reader is None or self.reader.done():
            self.reader = asyncio.get_running_loop().create_task(self.read())

    async def read(self) -> None:
        prefix_length = len(_channel(""))
        while True:
            try:
                message = await self.subscription().get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                # The next read reconnects, and redis-py then subscribes
                # again to every channel this shard still listens on.
                logger.warning("lost the Redis subscription; reconnecting")
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            if message is None or message.get("type") != "message":
                if not self.groups:
                    return
                continue
            group = message["channel"].decode()[prefix_length:]
            self.hub.dispatch(group, message["data"])


class Hub:
    """The registry of one event loop (one server process)."""

    def __init__(self) -> None:
        self.members: dict[str, set[Member]] = {}
        self.shards = [Shard(self, url) for url in settings.DASHIFY_FANOUT_REDIS_URLS]

    async def join(self, group: str, member: Member) -> None:
        """Add a local socket to a group; subscribe this process if first."""
        shard = self.shards[shard_of(group)]
        async with shard.lock:
            members = self.members.get(group)
            if members is None:
                await shard.subscription().subscribe(_channel(group))
                members = self.members[group] = set()
                shard.groups += 1
                shard.ensure_reader()
            members.add(member)

    async def leave(self, group: str, member: Member) -> None:
        """Remove a local socket; unsubscribe this process if it was the last."""
        shard = self.shards[shard_of(group)]
        async with shard.lock:
            members = self.members.get(group)
            if members is None or member not in members:
                return
            members.discard(member)
            if members:
                return
            del self.members[group]
            shard.groups -= 1
            try:
                await shard.subscription().unsubscribe(_channel(group))
            except (RedisError, OSError):
                # Events for a group without members are dropped on
                # arrival, so a failed unsubscribe costs only traffic.
                logger.debug("unsubscribe from %s failed", group)

    def dispatch(self, group: str, data: bytes) -> None:
        members = self.members.get(group)
        if not members:
            return
        frame = data.decode()
        event = json.loads(frame)
        for member in list(members):
            member.deliver(frame, event)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = (
    weakref.WeakKeyDictionary()
)


def hub() -> Hub:
    """Return the hub of the running event loop."""
    loop = asyncio.get_running_loop()
    current = _hubs.get(loop)
    if current is None:
        current = _hubs[loop] = Hub()
    return current
