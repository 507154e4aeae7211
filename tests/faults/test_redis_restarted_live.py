"""
Redis restarted empty (stop, then start on the same port, no persistence)
under a running daphne process with sockets open. Every session went with
the data, so no revocation event will ever arrive for them: the sockets'
own session check (DASHIFY_WS_SESSION_CHECK, 1 s here) must close them.
The server itself carries on, and people sign in and connect again.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus

import pytest
from websockets.asyncio.client import ClientConnection

from realtime.protocol import CloseCode
from tests.conftest import LiveServer, LiveSite, RedisServer
from tests.faults.support import (
    Browser,
    frame_of_type,
    frames_until_closed,
    handshake,
    new_http_session,
    sign_in,
    socket_on,
)

pytestmark = pytest.mark.slow

# A few session checks' worth: the liveness bound for an orphaned socket.
ORPHAN_BOUND = 5.0


@dataclass
class Restarted:
    site: LiveSite
    server: LiveServer
    alice: Browser
    socket: ClientConnection


@pytest.fixture
async def restarted(
    site: LiveSite, server: LiveServer, private_redis: RedisServer
) -> AsyncIterator[Restarted]:
    """Alice signed in with a socket open, then Redis restarted empty."""
    alice = await asyncio.to_thread(sign_in, server, "alice")
    token = await asyncio.to_thread(alice.token)
    async with socket_on(server, token, site.origin) as socket:
        private_redis.stop()
        private_redis.start()
        yield Restarted(site, server, alice, socket)


async def test_the_server_survives_a_redis_restart_and_still_answers_http(
    restarted: Restarted,
) -> None:
    http = new_http_session()

    response = http.get(restarted.server.url + "/accounts/login/", timeout=10)

    assert response.status_code == HTTPStatus.OK
    assert restarted.server.process.poll() is None


async def test_a_session_lost_in_the_restart_signs_its_browser_out(
    restarted: Restarted,
) -> None:
    response = await asyncio.to_thread(restarted.alice.get, "/")

    assert response.status_code == HTTPStatus.FOUND
    assert response.headers["Location"] == "/accounts/login/?next=/"


async def test_a_socket_whose_session_was_lost_closes_with_4001_within_seconds(
    restarted: Restarted,
) -> None:
    frames, code = await frames_until_closed(restarted.socket, within=ORPHAN_BOUND)

    assert frames == [{"type": "session.ended", "reason": "expired"}]
    assert code == CloseCode.SESSION_ENDED


async def test_after_the_restart_a_fresh_sign_in_reconnects(
    restarted: Restarted,
) -> None:
    alice = await asyncio.to_thread(sign_in, restarted.server, "alice")
    token = await asyncio.to_thread(alice.token)

    assert await handshake(restarted.server, token, restarted.site.origin) == (
        "accepted"
    )


async def test_after_the_restart_chat_flows_between_new_sockets(
    restarted: Restarted,
) -> None:
    alice = await asyncio.to_thread(sign_in, restarted.server, "alice")
    bob = await asyncio.to_thread(sign_in, restarted.server, "bob")
    room = await asyncio.to_thread(alice.room_id, "general")
    alice_token = await asyncio.to_thread(alice.token)
    bob_token = await asyncio.to_thread(bob.token)
    origin = restarted.site.origin

    async with (
        socket_on(restarted.server, alice_token, origin) as alice_socket,
        socket_on(restarted.server, bob_token, origin) as bob_socket,
    ):
        for socket in (alice_socket, bob_socket):
            await socket.send(json.dumps({"type": "chat.join", "room": room}))
            await frame_of_type(socket, "chat.history")
        await alice_socket.send(
            json.dumps({"type": "chat.send", "room": room, "body": "back"})
        )
        frame = await frame_of_type(bob_socket, "chat.message")

    assert (frame["message"]["author"], frame["message"]["body"]) == ("alice", "back")
