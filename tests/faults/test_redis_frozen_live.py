"""
Redis frozen (SIGSTOP) under a running daphne process: connections stay
open but nothing answers, the failure that hangs a server whose clients
wait forever. With DASHIFY_REDIS_TIMEOUT (1 s) every request must give up
and answer 503 within a few seconds, handshakes must be refused, and when
Redis thaws with its data intact the same session simply carries on.
"""

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus

import pytest
from websockets.asyncio.client import ClientConnection

from tests.conftest import LiveServer, LiveSite, RedisServer
from tests.faults.support import (
    HANDSHAKE_BOUND,
    Browser,
    handshake,
    next_frame,
    sign_in,
    socket_on,
    timed,
)

pytestmark = pytest.mark.slow

# A liveness bound: a few Redis timeouts, never an indefinite wait.
PROMPTLY = 5.0
PAST_A_SESSION_CHECK = 2.5

# (method, path) of a signed-in person's requests that need Redis.
NEEDS_REDIS = [
    ("GET", "/"),
    ("GET", "/accounts/sessions/"),
    ("POST", "/accounts/ws-token/"),
    ("POST", "/accounts/logout/"),
]


@dataclass
class Frozen:
    site: LiveSite
    server: LiveServer
    alice: Browser
    socket: ClientConnection
    unspent_token: str

    def thaw(self, redis: RedisServer) -> None:
        assert redis.process is not None
        os.kill(redis.process.pid, signal.SIGCONT)


@pytest.fixture
async def frozen(
    site: LiveSite, server: LiveServer, private_redis: RedisServer
) -> AsyncIterator[Frozen]:
    """Alice signed in with a socket open, then Redis frozen."""
    alice = await asyncio.to_thread(sign_in, server, "alice")
    token = await asyncio.to_thread(alice.token)
    unspent = await asyncio.to_thread(alice.token)
    assert private_redis.process is not None
    async with socket_on(server, token, site.origin) as socket:
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        try:
            yield Frozen(site, server, alice, socket, unspent)
        finally:
            # A stopped redis-server would ignore the fixture's SIGTERM.
            os.kill(private_redis.process.pid, signal.SIGCONT)


def _send(alice: Browser, method: str, path: str) -> int:
    send = alice.get if method == "GET" else alice.post
    return send(path).status_code


async def test_requests_that_need_redis_answer_503_promptly_while_it_is_frozen(
    frozen: Frozen,
) -> None:
    answers = {}
    for method, path in NEEDS_REDIS:
        status, seconds = await asyncio.to_thread(
            timed, partial(_send, frozen.alice, method, path)
        )
        answers[method, path] = (status, seconds < PROMPTLY)

    assert answers == {
        request: (HTTPStatus.SERVICE_UNAVAILABLE, True) for request in NEEDS_REDIS
    }


async def test_a_handshake_is_refused_within_3_seconds_while_redis_is_frozen(
    frozen: Frozen,
) -> None:
    started = asyncio.get_running_loop().time()

    outcome = await handshake(frozen.server, frozen.unspent_token, frozen.site.origin)

    assert outcome == HTTPStatus.FORBIDDEN
    assert asyncio.get_running_loop().time() - started < HANDSHAKE_BOUND


async def test_an_open_socket_survives_a_frozen_redis_and_answers_ping(
    frozen: Frozen,
) -> None:
    await asyncio.sleep(PAST_A_SESSION_CHECK)

    await frozen.socket.send(json.dumps({"type": "ping"}))

    assert await next_frame(frozen.socket) == {"type": "pong"}


async def test_the_same_session_carries_on_once_redis_thaws(
    frozen: Frozen, private_redis: RedisServer
) -> None:
    await asyncio.sleep(PAST_A_SESSION_CHECK)
    frozen.thaw(private_redis)

    page = await asyncio.to_thread(frozen.alice.get, "/")
    token = await asyncio.to_thread(frozen.alice.token)
    await frozen.socket.send(json.dumps({"type": "ping"}))

    assert page.status_code == HTTPStatus.OK
    assert await handshake(frozen.server, token, frozen.site.origin) == "accepted"
    assert await next_frame(frozen.socket) == {"type": "pong"}
