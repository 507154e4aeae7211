"""
Group fan-out for the dashboard sockets: a per-process registry of local
sockets per group, fed by Redis pub/sub.

Why not the Channels layer's groups: channels-redis delivers one message
per member channel and Channels dispatches each through a worker-thread
hop, so an event for 1,000 sockets costs 1,000 deliveries and hops. Here
an event is serialised once by the publisher, published once, received
once per process, and written to each local socket without a hop.

Groups come in two kinds (realtime.groups):

- Shared groups (a tenant's rooms and boards) have a channel of their own.
  A process subscribes to it when its first local socket joins and
  unsubscribes when its last one leaves.
- Personal groups (one session's sockets, one person's sockets) would need
  a subscription per socket, paid for at every handshake. Their events
  travel instead on one channel per Redis server, which every process
  listens to from its first socket on, and each process drops the events
  for groups it has no socket in. Joining a personal group is therefore a
  dictionary insert: no Redis command.

Delivery to one socket never waits for another: each socket has a small
outbox drained by a task of its own, started only while frames are
pending. A socket whose outbox overflows is closed instead of holding
memory or delaying its group. That happens when the ASGI server applies
backpressure (uvicorn waits for a slow client's socket to drain); daphne
accepts every write at once and buffers it itself, so under daphne the
outbox fills only when events arrive faster than the process can write.

Pub/sub keeps nothing: an event published while a process is (re)joining
Redis is lost to that process. Clients therefore resynchronise when they
(re)join a room or board (chat.history, board.snapshot); personal groups
are not joinable until the process listens on their channel, and the hub
announces each renewed subscription (``Hub.resubscribed``) so that what
was missed in between can be checked (realtime.watch).
"""

import asyncio
import collections
import json
import logging
import weakref
import zlib
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from django.conf import settings
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from dashify.redis import aclient_for_url, client_for_url
from realtime.groups import is_personal

logger = logging.getLogger("dashify.realtime")

RECONNECT_PAUSE = 0.5
# How long a handshake waits for its process to listen on the personal
# channels (only the first handshakes of a process, or during a reconnect):
# well within the three seconds in which Dashify refuses a handshake that
# Redis cannot serve.
LISTEN_TIMEOUT = 2.0
# Separates a personal group's name from the frame on the personal channel.
# Group names never contain it (realtime.groups).
SEPARATOR = "\n"


def _channel(group: str) -> str:
    return f"{settings.DASHIFY_REDIS_KEY_PREFIX}:fan:{group}"


def personal_channel() -> str:
    return f"{settings.DASHIFY_REDIS_KEY_PREFIX}:fan-personal"


def shard_of(group: str) -> int:
    """Index of the Redis server (in DASHIFY_FANOUT_REDIS_URLS) for a group."""
    return zlib.crc32(group.encode()) % len(settings.DASHIFY_FANOUT_REDIS_URLS)


def _url(group: str) -> str:
    return settings.DASHIFY_FANOUT_REDIS_URLS[shard_of(group)]


def encode(event: dict[str, Any]) -> str:
    # Non-ASCII as UTF-8, not \\u escapes: an emoji costs 4 bytes, not 12,
    # which keeps history and snapshots far from the frame size limit.
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def _message(group: str, event: dict[str, Any]) -> tuple[str, str]:
    """The channel and payload that carry an event for a group."""
    if is_personal(group):
        return personal_channel(), group + SEPARATOR + encode(event)
    return _channel(group), encode(event)


def publish(group: str, event: dict[str, Any]) -> None:
    """Publish an event to a group from synchronous code (one PUBLISH)."""
    client_for_url(_url(group)).publish(*_message(group, event))


async def apublish(group: str, event: dict[str, Any]) -> None:
    """Publish an event to a group from asynchronous code (one PUBLISH)."""
    await aclient_for_url(_url(group)).publish(*_message(group, event))


class Member:
    """
    One socket's side of the hub. A member can join groups before its
    socket exists (the handshake registers it before spending the token);
    until ``bind`` gives it its socket's callbacks, events wait in order.

    ``send`` writes a text frame to the socket; ``on_event`` sees every
    event before it is written and may return False to keep it from the
    client (for control events such as session.ended); ``on_overflow`` is
    called once when the outbox fills. Frames wait in the outbox until
    ``start`` is called.
    """

    __slots__ = (
        "send",
        "on_event",
        "on_overflow",
        "early",
        "outbox",
        "writer",
        "overflowed",
        "started",
        "__weakref__",
    )

    def __init__(self) -> None:
        self.send: Callable[[str], Coroutine[Any, Any, None]] = _unbound_send
        self.on_event: Callable[[dict[str, Any]], bool] = _let_through
        self.on_overflow: Callable[[], None] = _ignore
        # Events that arrived before ``bind``; None once bound.
        self.early: list[tuple[str, dict[str, Any]]] | None = []
        self.outbox: collections.deque[str] = collections.deque()
        self.writer: asyncio.Task[None] | None = None
        self.overflowed = False
        self.started = False

    def bind(
        self,
        send: Callable[[str], Coroutine[Any, Any, None]],
        on_event: Callable[[dict[str, Any]], bool],
        on_overflow: Callable[[], None],
    ) -> None:
        """Attach the socket, and hand it what arrived before."""
        self.send, self.on_event, self.on_overflow = send, on_event, on_overflow
        early, self.early = self.early or [], None
        for frame, event in early:
            self.deliver(frame, event)

    def start(self) -> None:
        """Write what is waiting, and from now on what arrives."""
        self.started = True
        if self.writer is None:
            self._write()

    def deliver(self, frame: str, event: dict[str, Any]) -> None:
        if self.early is not None:
            # Not bound yet: at most a buffer's worth; more would overflow
            # once bound anyway.
            if len(self.early) <= settings.DASHIFY_WS_SEND_BUFFER:
                self.early.append((frame, event))
            return
        if self.overflowed or not self.on_event(event):
            return
        if len(self.outbox) >= settings.DASHIFY_WS_SEND_BUFFER:
            self.overflowed = True
            self.outbox.clear()
            self.on_overflow()
            return
        self.outbox.append(frame)
        if self.started and self.writer is None:
            self._write()

    def _write(self) -> None:
        """
        Write the outbox now, for as long as the socket takes frames
        without waiting; hand the rest to a task of this socket's own at
        the first write that has to wait.

        A task per socket and event would cost more than the write itself
        in a large fan-out, and most writes never wait: the ASGI server
        copies the frame into its buffer and returns.
        """
        while self.outbox:
            write = self.send(self.outbox.popleft())
            try:
                waiting_on = write.send(None)
            except StopIteration:
                continue
            except Exception:
                self._lost()
                return
            self.writer = asyncio.get_running_loop().create_task(
                self._finish(_Suspended(write, waiting_on))
            )
            return

    async def _finish(self, write: "_Suspended") -> None:
        try:
            await write
            while self.outbox:
                await self.send(self.outbox.popleft())
        except Exception:
            self._lost()
        finally:
            self.writer = None

    def _lost(self) -> None:
        # The socket went away mid-write; whoever joined the member to its
        # groups (the middleware, the consumer) removes it when the
        # connection ends.
        self.outbox.clear()


async def _unbound_send(frame: str) -> None:
    raise RuntimeError("a member writes only once bound and started")


def _let_through(event: dict[str, Any]) -> bool:
    return True


def _ignore() -> None:
    pass


class _Suspended:
    """
    A coroutine that was started by hand and is waiting on ``waiting_on``
    (whatever it yielded); awaiting this object runs it to the end inside
    the awaiting task, as if the task had started it.
    """

    __slots__ = ("coroutine", "waiting_on")

    def __init__(self, coroutine: Any, waiting_on: Any) -> None:
        self.coroutine, self.waiting_on = coroutine, waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, waiting_on = self.coroutine, self.waiting_on
        while True:
            try:
                resumed_with = yield waiting_on
            except BaseException as error:  # cancellation included
                try:
                    waiting_on = coroutine.throw(error)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waiting_on = coroutine.send(resumed_with)
                except StopIteration as done:
                    return done.value


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
        # Set while Redis has confirmed the personal channel's subscription
        # on the current connection; cleared when the connection fails.
        self.listening = asyncio.Event()
        self.personal_requested = False
        # Whether Redis has confirmed the personal channel before: a
        # second confirmation means a renewed, lossy subscription.
        self.confirmed_before = False

    def subscription(self) -> PubSub:
        if self.pubsub is None:
            self.pubsub = aclient_for_url(self.url).pubsub()
        return self.pubsub

    def ensure_reader(self) -> None:
        if self.reader is None or self.reader.done():
            self.reader = asyncio.get_running_loop().create_task(self.read())

    async def listen_personal(self) -> None:
        """
        Return once this process hears the personal channel of this shard;
        raise RedisError if Redis has not confirmed within LISTEN_TIMEOUT.
        """
        if self.listening.is_set():
            return
        async with self.lock:
            if not self.personal_requested:
                await self.subscription().subscribe(personal_channel())
                self.personal_requested = True
                self.ensure_reader()
        try:
            async with asyncio.timeout(LISTEN_TIMEOUT):
                await self.listening.wait()
        except TimeoutError as error:
            raise RedisError("the personal channel is not subscribed") from error

    async def read(self) -> None:
        prefix_length = len(_channel(""))
        personal = personal_channel().encode()
        while True:
            try:
                message = await self.subscription().get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                # The next read reconnects, and redis-py then subscribes
                # again to every channel this shard still listens on.
                self.listening.clear()
                logger.warning("lost the Redis subscription; reconnecting")
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            if message is None:
                continue
            kind, channel = message.get("type"), message.get("channel")
            if kind == "message":
                try:
                    self.handle(channel, message["data"], personal, prefix_length)
                except Exception:
                    # A malformed event (a buggy publisher, another
                    # deployment on the same prefix) is dropped, never
                    # quoted: the reader must live on, or this process
                    # goes deaf to revocations.
                    logger.warning("dropped a malformed event on %s", channel)
            elif kind == "subscribe" and channel == personal:
                self.listening.set()
                if self.confirmed_before:
                    self.hub.resubscribed.set()
                self.confirmed_before = True

    def handle(
        self, channel: bytes, data: bytes, personal: bytes, prefix_length: int
    ) -> None:
        if channel == personal:
            group, _, frame = data.decode().partition(SEPARATOR)
            self.hub.dispatch(group, frame)
        else:
            self.hub.dispatch(channel.decode()[prefix_length:], data.decode())


class Hub:
    """The registry of one event loop (one server process)."""

    def __init__(self) -> None:
        self.members: dict[str, set[Member]] = {}
        self.shards = [Shard(self, url) for url in settings.DASHIFY_FANOUT_REDIS_URLS]
        # Set when a personal channel was subscribed again after a lost
        # connection: events published in between never arrived.
        self.resubscribed = asyncio.Event()

    async def join(self, group: str, member: Member) -> None:
        """Add a local socket to a group; subscribe this process if needed."""
        shard = self.shards[shard_of(group)]
        if is_personal(group):
            await shard.listen_personal()
            self.members.setdefault(group, set()).add(member)
            return
        async with shard.lock:
            members = self.members.get(group)
            if members is None:
                await shard.subscription().subscribe(_channel(group))
                members = self.members[group] = set()
                shard.ensure_reader()
            members.add(member)

    async def leave(self, group: str, member: Member) -> None:
        """Remove a local socket; unsubscribe this process if it was the last."""
        if is_personal(group):
            self._discard(group, member)
            return
        shard = self.shards[shard_of(group)]
        async with shard.lock:
            if not self._discard(group, member):
                return
            try:
                await shard.subscription().unsubscribe(_channel(group))
            except (RedisError, OSError):
                # Events for a group without members are dropped on
                # arrival, so a failed unsubscribe costs only traffic.
                logger.debug("unsubscribe from %s failed", group)

    def _discard(self, group: str, member: Member) -> bool:
        """Remove a member; True if that emptied the group."""
        members = self.members.get(group)
        if members is None or member not in members:
            return False
        members.discard(member)
        if members:
            return False
        del self.members[group]
        return True

    def groups_named(self, prefix: str) -> list[str]:
        """The groups with a local socket whose names start with ``prefix``."""
        return [group for group in self.members if group.startswith(prefix)]

    def dispatch(self, group: str, frame: str) -> None:
        members = self.members.get(group)
        if not members:
            return
        event = json.loads(frame)
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ValueError("an event is a JSON object with a type")
        for member in list(members):
            member.deliver(frame, event)

    def dispatch_event(self, group: str, event: dict[str, Any]) -> None:
        """Deliver an event to this process's sockets in a group only."""
        self.dispatch(group, encode(event))


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
