"""
Redis stopped under a running daphne process, with a person signed in and
a socket open: the site answers 503 (never 500) and refuses handshakes at
once, the open socket rides the outage out, and once Redis is back on the
same port everything works again without restarting the server.

tests/faults/test_redis_outage.py covers the same outage for the HTTP
views in-process; here it is the real server, its logs and its sockets.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus

import pytest
from websockets.asyncio.client import ClientConnection

from tests.conftest import LiveServer, LiveSite, RedisServer
from tests.faults.support import (
    HANDSHAKE_BOUND,
    Browser,
    handshake,
    new_http_session,
    next_frame,
    sign_in,
    socket_on,
    try_sign_in,
)

pytestmark = pytest.mark.slow

# One session check (DASHIFY_WS_SESSION_CHECK=1) and then some.
PAST_A_SESSION_CHECK = 2.5

# Daphne's access log: '<client> - - [<date>] "<METHOD> <path>" <status> <size>'.
ACCESS_LINE = re.compile(r'\] "(?P<request>[A-Z]+ \S+)" (?P<status>\d{3}) ')

# (who, method, path, status while Redis is down). The visitor has no
# session cookie, so nothing needs Redis to show the login form.
OUTAGE_ANSWERS = [
    ("signed-in", "GET", "/", HTTPStatus.SERVICE_UNAVAILABLE),
    ("signed-in", "GET", "/accounts/sessions/", HTTPStatus.SERVICE_UNAVAILABLE),
    ("signed-in", "POST", "/accounts/sessions/", HTTPStatus.SERVICE_UNAVAILABLE),
    ("signed-in", "GET", "/accounts/password/", HTTPStatus.SERVICE_UNAVAILABLE),
    ("signed-in", "GET", "/accounts/login/", HTTPStatus.SERVICE_UNAVAILABLE),
    ("signed-in", "POST", "/accounts/logout/", HTTPStatus.SERVICE_UNAVAILABLE),
    ("signed-in", "POST", "/accounts/ws-token/", HTTPStatus.SERVICE_UNAVAILABLE),
    ("signed-in", "POST", "/realtime/boards/1/export/", HTTPStatus.SERVICE_UNAVAILABLE),
    ("signed-in", "GET", "/admin/", HTTPStatus.SERVICE_UNAVAILABLE),
    ("signed-in", "GET", "/static/dashify/dashify.css", HTTPStatus.OK),
    ("visitor", "GET", "/accounts/login/", HTTPStatus.OK),
]


@dataclass
class Outage:
    site: LiveSite
    server: LiveServer
    redis: RedisServer
    alice: Browser
    socket: ClientConnection
    # Minted before the outage and never used.
    unspent_token: str


@pytest.fixture
async def outage(
    site: LiveSite, server: LiveServer, private_redis: RedisServer
) -> AsyncIterator[Outage]:
    """Alice signed in with a socket open, then Redis stopped."""
    alice = await asyncio.to_thread(sign_in, server, "alice")
    token = await asyncio.to_thread(alice.token)
    unspent = await asyncio.to_thread(alice.token)
    async with socket_on(server, token, site.origin) as socket:
        private_redis.stop()
        yield Outage(site, server, private_redis, alice, socket, unspent)


def _answer(outage: Outage, who: str, method: str, path: str) -> int:
    if who == "signed-in":
        send = outage.alice.get if method == "GET" else outage.alice.post
        return send(path).status_code
    http = new_http_session()
    return http.request(method, outage.server.url + path, timeout=10).status_code


def test_every_page_answers_503_or_works_while_redis_is_down(
    outage: Outage,
) -> None:
    answers = {
        (who, method, path): _answer(outage, who, method, path)
        for who, method, path, _ in OUTAGE_ANSWERS
    }

    assert answers == {
        (who, method, path): status for who, method, path, status in OUTAGE_ANSWERS
    }


def test_minting_a_token_answers_503_json_while_redis_is_down(
    outage: Outage,
) -> None:
    response = outage.alice.post("/accounts/ws-token/")

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {
        "error": "unavailable",
        "detail": "Redis is unreachable; retry later.",
    }


async def test_a_handshake_is_refused_within_3_seconds_while_redis_is_down(
    outage: Outage,
) -> None:
    started = asyncio.get_running_loop().time()

    outcome = await handshake(outage.server, outage.unspent_token, outage.site.origin)

    assert outcome == HTTPStatus.FORBIDDEN
    assert asyncio.get_running_loop().time() - started < HANDSHAKE_BOUND


async def test_an_open_socket_survives_the_outage_and_answers_ping(
    outage: Outage,
) -> None:
    # The session check cannot tell whether the session lives; it must
    # keep the socket rather than close it on a guess.
    await asyncio.sleep(PAST_A_SESSION_CHECK)

    await outage.socket.send(json.dumps({"type": "ping"}))

    assert await next_frame(outage.socket) == {"type": "pong"}


async def test_a_frame_that_needs_redis_earns_an_unavailable_error_during_the_outage(
    outage: Outage,
) -> None:
    await outage.socket.send(json.dumps({"type": "chat.join", "room": 1, "ref": 7}))

    assert await next_frame(outage.socket) == {
        "type": "error",
        "code": "unavailable",
        "message": "Temporarily unavailable; retry.",
        "ref": 7,
    }


async def test_the_outage_leaves_no_500_and_no_traceback_in_the_server_log(
    outage: Outage,
) -> None:
    for who, method, path, _ in OUTAGE_ANSWERS:
        await asyncio.to_thread(_answer, outage, who, method, path)
    await handshake(outage.server, outage.unspent_token, outage.site.origin)
    await outage.socket.send(json.dumps({"type": "chat.join", "room": 1}))
    await next_frame(outage.socket)
    await asyncio.sleep(PAST_A_SESSION_CHECK)

    log = outage.server.log()
    statuses = {m["request"]: m["status"] for m in ACCESS_LINE.finditer(log)}
    assert statuses, "daphne wrote no access log"
    assert {r: s for r, s in statuses.items() if s.startswith("5") and s != "503"} == {}
    assert [line for line in log.splitlines() if "Traceback" in line] == []


async def test_everything_works_again_once_redis_is_back_without_a_restart(
    outage: Outage,
) -> None:
    outage.redis.start()

    alice, status = await asyncio.to_thread(try_sign_in, outage.server, "alice")
    assert status == HTTPStatus.FOUND
    mint = await asyncio.to_thread(alice.post, "/accounts/ws-token/")
    assert mint.status_code == HTTPStatus.OK
    outcome = await handshake(outage.server, mint.json()["token"], outage.site.origin)

    assert outcome == "accepted"
    assert outage.server.process.poll() is None, "daphne restarted or died"
