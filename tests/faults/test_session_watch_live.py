"""
One session check per server process (realtime.watch) closes the sockets
of sessions that ended without a revocation event reaching them: at once
after the process subscribed again to Redis, and otherwise every
DASHIFY_WS_SESSION_CHECK seconds, one session at a time.
"""

import asyncio
import json

import pytest
import redis
from django.conf import settings

from accounts.services import session_binding
from dashify.redis import key
from realtime.protocol import CloseCode
from tests.conftest import LiveServer, LiveSite, RedisServer
from tests.faults.support import (
    frame_of_type,
    frames_until_closed,
    on_private_redis,
    sign_in,
    socket_on,
)

pytestmark = pytest.mark.slow

# A check interval no test waits for.
LONG_CHECK = 60
# Reconnecting and subscribing again takes a second or two; far below
# LONG_CHECK, so a close within it cannot come from the periodic check.
RESUBSCRIBE_BOUND = 10.0
# A few one-second checks' worth (the ``site`` fixture's interval).
CHECK_BOUND = 5.0

EXPIRED = {"type": "session.ended", "reason": "expired"}


@pytest.fixture
def patient_server(live_site: LiveSite, private_redis: RedisServer) -> LiveServer:
    """A server on the test's own Redis whose periodic check waits a minute."""
    on_private_redis(live_site, private_redis, DASHIFY_WS_SESSION_CHECK=str(LONG_CHECK))
    return live_site.start_server()


def tokens_database(server: RedisServer) -> redis.Redis:
    """A client of the tokens database on ``server``, numbered as the site's."""
    return redis.Redis(port=server.port, db=settings.REDIS_PURPOSES.index("tokens"))


async def test_a_redis_restart_ends_orphaned_sockets_without_waiting_for_the_check(
    live_site: LiveSite, patient_server: LiveServer, private_redis: RedisServer
) -> None:
    alice = await asyncio.to_thread(sign_in, patient_server, "alice")
    token = await asyncio.to_thread(alice.token)

    async with socket_on(patient_server, token, live_site.origin) as socket:
        private_redis.stop()
        private_redis.start()
        frames, code = await frames_until_closed(socket, within=RESUBSCRIBE_BOUND)

    assert frames == [EXPIRED]
    assert code == CloseCode.SESSION_ENDED


async def test_a_vanished_session_loses_its_socket_and_nobody_else_does(
    site: LiveSite, server: LiveServer, private_redis: RedisServer
) -> None:
    alice = await asyncio.to_thread(sign_in, server, "alice")
    bob = await asyncio.to_thread(sign_in, server, "bob")
    alice_token = await asyncio.to_thread(alice.token)
    bob_token = await asyncio.to_thread(bob.token)
    alive = key("session-alive", session_binding(alice.session_key))

    async with (
        socket_on(server, alice_token, site.origin) as alice_socket,
        socket_on(server, bob_token, site.origin) as bob_socket,
    ):
        with tokens_database(private_redis) as client:
            assert client.delete(alive) == 1
        frames, code = await frames_until_closed(alice_socket, within=CHECK_BOUND)
        # Another check or two runs while bob's socket stays open.
        await asyncio.sleep(2 * float(site.env["DASHIFY_WS_SESSION_CHECK"]))
        await bob_socket.send(json.dumps({"type": "ping"}))
        pong = await frame_of_type(bob_socket, "pong")

    assert frames == [EXPIRED]
    assert code == CloseCode.SESSION_ENDED
    assert pong == {"type": "pong"}
