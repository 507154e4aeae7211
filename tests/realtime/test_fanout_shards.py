"""
Live events spread over two Redis servers (DASHIFY_FANOUT_REDIS_URLS):
each group lives on the server its name hashes to, and two daphne
processes still exchange chat and revocations through both.
"""

import asyncio
import json
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from websockets.exceptions import ConnectionClosed

from realtime import fanout, groups
from realtime.protocol import CloseCode
from tests.conftest import LiveSite, RedisServer, free_port
from tests.realtime.test_multiprocess import sign_in, socket_on

pytestmark = pytest.mark.slow


@pytest.fixture
def two_redis(tmp_path: Path) -> Iterator[list[RedisServer]]:
    servers = []
    for name in ("one", "two"):
        data = tmp_path / name
        data.mkdir()
        server = RedisServer(port=free_port(), data_dir=data)
        server.start()
        servers.append(server)
    yield servers
    for server in servers:
        server.stop()


def subscribers(server: RedisServer, group: str) -> int:
    """Listeners of the channel that carries a group's events on a server."""
    client = redis.Redis(port=server.port)
    prefix = settings.DASHIFY_REDIS_KEY_PREFIX
    try:
        if groups.is_personal(group):
            channel = f"{prefix}:fan-personal"
        else:
            channel = f"{prefix}:fan:{group}"
        return dict(client.pubsub_numsub(channel))[channel.encode()]
    finally:
        client.close()


async def test_groups_live_on_the_server_their_name_hashes_to(
    live_site: LiveSite, two_redis: list[RedisServer]
) -> None:
    urls = [server.url for server in two_redis]
    live_site.env["DASHIFY_FANOUT_REDIS_URLS"] = ",".join(urls)
    a, b = live_site.start_server(), live_site.start_server()
    alice = await asyncio.to_thread(sign_in, a, "alice")
    bob = await asyncio.to_thread(sign_in, b, "bob")
    room = await asyncio.to_thread(alice.room_id, "general")
    tokens = [await asyncio.to_thread(alice.token), await asyncio.to_thread(bob.token)]

    async with (
        socket_on(live_site, b, tokens[0]) as alice_socket,
        socket_on(live_site, a, tokens[1]) as bob_socket,
    ):
        for socket in (alice_socket, bob_socket):
            await socket.send(json.dumps({"type": "chat.join", "room": room}))
            assert json.loads(await socket.recv())["type"] == "chat.history"

        # The demo tenant acme is the first one seeded; alice is user 1.
        spread = [groups.room_group(1, room), groups.user_group(1)]
        with override_settings(DASHIFY_FANOUT_REDIS_URLS=urls):
            homes = [fanout.shard_of(group) for group in spread]
        assert sorted(homes) == [0, 1], "pick groups that hash apart"
        for group, home in zip(spread, homes, strict=True):
            assert subscribers(two_redis[home], group) >= 1
        # A shared group is heard only where it lives; the personal channel
        # of the other server may carry other people's groups.
        room_home = homes[0]
        assert subscribers(two_redis[1 - room_home], spread[0]) == 0

        await bob_socket.send(
            json.dumps({"type": "chat.send", "room": room, "body": "sharded"})
        )
        async with asyncio.timeout(5):
            frame = json.loads(await alice_socket.recv())
        assert frame["message"]["body"] == "sharded"

        response = await asyncio.to_thread(alice.post, "/accounts/logout/")
        assert response.status_code == HTTPStatus.FOUND
        async with asyncio.timeout(1):
            ended = json.loads(await alice_socket.recv())
            with pytest.raises(ConnectionClosed) as closed:
                await alice_socket.recv()

    assert ended == {"type": "session.ended", "reason": "signed-out"}
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CloseCode.SESSION_ENDED
    for server in (a, b):
        for token in tokens:
            assert token not in server.log()
