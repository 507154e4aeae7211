"""
One of two daphne processes sharing Redis is killed outright (SIGKILL)
with sockets open on both. The survivor's sockets keep working, and Redis
stops counting the dead process as a listener of the groups they share,
so that nothing keeps publishing to a ghost.
"""

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from http import HTTPStatus

import pytest
import redis
from websockets.asyncio.client import ClientConnection

from realtime import groups
from realtime.protocol import CloseCode
from tests.conftest import LiveServer, LiveSite, RedisServer
from tests.faults.support import (
    Browser,
    frame_of_type,
    frames_until_closed,
    group_channel_names,
    group_subscribers,
    handshake,
    pubsub_channels,
    sign_in,
    socket_with_hello,
    wait_until,
)

pytestmark = pytest.mark.slow

# Redis drops a dead client's subscriptions when its TCP connection closes,
# which the kernel does at once for a killed process.
UNSUBSCRIBED_BOUND = 5.0

# (socket name, person, server): alice and bob on both servers.
SOCKETS = [
    ("alice@a", "alice", "a"),
    ("bob@a", "bob", "a"),
    ("alice@b", "alice", "b"),
    ("bob@b", "bob", "b"),
]


@dataclass
class Pair:
    """Servers A and B, each with a socket of alice and of bob in one room."""

    site: LiveSite
    a: LiveServer
    b: LiveServer
    redis: redis.Redis
    browsers: dict[str, Browser]
    sockets: dict[str, ClientConnection]
    room: int
    # The groups every socket is in: the room's and both people's.
    shared_groups: list[str]

    def kill_a(self) -> None:
        os.kill(self.a.process.pid, signal.SIGKILL)
        self.a.process.wait(timeout=10)

    def subscribers(self) -> dict[str, int]:
        return {g: group_subscribers(self.redis, g) for g in self.shared_groups}

    def session_channel_listeners(self) -> int:
        """How many processes listen for sessions' events (one channel each)."""
        any_session = groups.session_group("0" * 32)
        return group_subscribers(self.redis, any_session)


@pytest.fixture
async def pair(site: LiveSite, private_redis: RedisServer) -> AsyncIterator[Pair]:
    servers = {"a": site.start_server(), "b": site.start_server()}
    client = redis.Redis.from_url(private_redis.url)
    browsers, sockets, hellos = {}, {}, {}
    async with AsyncExitStack() as stack:
        for name, person, server in SOCKETS:
            browsers[name] = await asyncio.to_thread(sign_in, servers[server], person)
        room = await asyncio.to_thread(browsers["alice@a"].room_id, "general")
        for name, browser in browsers.items():
            token = await asyncio.to_thread(browser.token)
            sockets[name], hellos[name] = await stack.enter_async_context(
                socket_with_hello(browser.server, token, site.origin)
            )
            await sockets[name].send(json.dumps({"type": "chat.join", "room": room}))
            await frame_of_type(sockets[name], "chat.history")

        tenant = hellos["alice@a"]["tenant"]
        yield Pair(
            site=site,
            a=servers["a"],
            b=servers["b"],
            redis=client,
            browsers=browsers,
            sockets=sockets,
            room=room,
            shared_groups=[
                groups.room_group(tenant, room),
                groups.user_group(hellos["alice@a"]["user"]),
                groups.user_group(hellos["bob@a"]["user"]),
            ],
        )
    client.close()


async def test_chat_between_sockets_on_the_survivor_flows_after_the_other_is_killed(
    pair: Pair,
) -> None:
    pair.kill_a()

    await pair.sockets["alice@b"].send(
        json.dumps({"type": "chat.send", "room": pair.room, "body": "still here"})
    )
    frame = await frame_of_type(pair.sockets["bob@b"], "chat.message")

    assert (frame["message"]["author"], frame["message"]["body"]) == (
        "alice",
        "still here",
    )


async def test_logout_through_the_survivor_closes_its_sockets_after_the_other_is_killed(
    pair: Pair,
) -> None:
    pair.kill_a()

    response = await asyncio.to_thread(
        pair.browsers["alice@b"].post, "/accounts/logout/"
    )
    frames, code = await frames_until_closed(pair.sockets["alice@b"], within=5.0)

    assert response.status_code == HTTPStatus.FOUND
    assert frames == [{"type": "session.ended", "reason": "signed-out"}]
    assert code == CloseCode.SESSION_ENDED


async def test_a_new_socket_opens_on_the_survivor_after_the_other_is_killed(
    pair: Pair,
) -> None:
    pair.kill_a()

    token = await asyncio.to_thread(pair.browsers["bob@b"].token)

    assert await handshake(pair.b, token, pair.site.origin) == "accepted"


def test_redis_lists_the_shared_groups_under_the_key_prefix(pair: Pair) -> None:
    # Guards the helpers below: a renamed channel would otherwise count as
    # zero subscribers everywhere.
    listed = pubsub_channels(pair.redis)

    assert {
        group: [name for name in group_channel_names(group) if name in listed] != []
        for group in pair.shared_groups
    } == {group: True for group in pair.shared_groups}


async def test_redis_stops_counting_a_killed_server_as_a_group_subscriber(
    pair: Pair,
) -> None:
    assert pair.subscribers() == {group: 2 for group in pair.shared_groups}
    assert pair.session_channel_listeners() == 2

    pair.kill_a()
    await asyncio.to_thread(
        wait_until,
        lambda: set(pair.subscribers().values()) == {1},
        UNSUBSCRIBED_BOUND,
    )

    assert pair.subscribers() == {group: 1 for group in pair.shared_groups}
    assert pair.session_channel_listeners() == 1
