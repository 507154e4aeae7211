"""
Two daphne processes behind one origin share Redis: a token is spent once
across both, a sign-out on one closes sockets on the other, and chat
crosses between them.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
import requests
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from realtime.protocol import CloseCode
from tests.conftest import PASSWORD, LiveServer, LiveSite

pytestmark = pytest.mark.slow

RACES = 10


@dataclass
class Browser:
    """A person signed in over HTTP through one of the servers."""

    server: LiveServer
    http: requests.Session

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        csrf = self.http.cookies[settings.CSRF_COOKIE_NAME]
        assert csrf is not None
        return self.http.post(
            self.server.url + path,
            headers={"X-CSRFToken": csrf},
            allow_redirects=False,
            timeout=10,
            **kwargs,
        )

    def token(self) -> str:
        response = self.post("/accounts/ws-token/")
        assert response.status_code == HTTPStatus.OK, response.text
        return response.json()["token"]

    def room_id(self, name: str) -> int:
        page = self.http.get(self.server.url + "/", timeout=10).text
        option = re.search(rf'<option value="(\d+)">#{name}<', page)
        assert option is not None, f"no room #{name} on the dashboard"
        return int(option.group(1))


def sign_in(server: LiveServer, username: str) -> Browser:
    http = requests.Session()
    # Talk to 127.0.0.1 directly whatever proxy the environment names.
    http.trust_env = False
    http.get(server.url + "/accounts/login/", timeout=10)
    response = http.post(
        server.url + "/accounts/login/",
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": http.cookies[settings.CSRF_COOKIE_NAME],
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == HTTPStatus.FOUND, response.text
    return Browser(server, http)


@dataclass
class TwoServers:
    site: LiveSite
    a: LiveServer
    b: LiveServer
    tokens: list[str]

    def assert_logs_hold_no_token(self) -> None:
        secrets = {part for token in self.tokens for part in [token, *token.split(".")]}
        for server in (self.a, self.b):
            log = server.log()
            assert [s for s in secrets if s in log] == [], f"token in {server.url} log"


@pytest.fixture
def servers(live_site: LiveSite) -> Iterator[TwoServers]:
    pair = TwoServers(live_site, live_site.start_server(), live_site.start_server(), [])
    yield pair
    pair.assert_logs_hold_no_token()


@asynccontextmanager
async def socket_on(
    site: LiveSite, server: LiveServer, token: str
) -> AsyncIterator[ClientConnection]:
    """An open socket whose hello frame was read."""
    async with connect(
        f"{server.ws_url}?token={token}", origin=Origin(site.origin), proxy=None
    ) as socket:
        assert json.loads(await socket.recv())["type"] == "hello"
        yield socket


async def handshake(site: LiveSite, server: LiveServer, token: str) -> int | str:
    """Return "accepted", or the HTTP status that refused the handshake."""
    try:
        async with socket_on(site, server, token):
            return "accepted"
    except InvalidStatus as refusal:
        return refusal.response.status_code


async def test_one_token_opens_one_socket_when_two_servers_race(
    servers: TwoServers,
) -> None:
    alice = await asyncio.to_thread(sign_in, servers.a, "alice")

    for _ in range(RACES):
        token = await asyncio.to_thread(alice.token)
        servers.tokens.append(token)
        outcomes = await asyncio.gather(
            handshake(servers.site, servers.a, token),
            handshake(servers.site, servers.b, token),
        )

        assert sorted(outcomes, key=str) == [HTTPStatus.FORBIDDEN, "accepted"]


async def test_signing_out_on_one_server_closes_the_socket_on_the_other(
    servers: TwoServers,
) -> None:
    alice = await asyncio.to_thread(sign_in, servers.a, "alice")
    token = await asyncio.to_thread(alice.token)
    servers.tokens.append(token)

    async with socket_on(servers.site, servers.b, token) as socket:
        response = await asyncio.to_thread(alice.post, "/accounts/logout/")
        assert response.status_code == HTTPStatus.FOUND

        async with asyncio.timeout(1):
            frame = json.loads(await socket.recv())
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()

    assert frame == {"type": "session.ended", "reason": "signed-out"}
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CloseCode.SESSION_ENDED


async def test_a_chat_message_sent_on_one_server_reaches_the_other(
    servers: TwoServers,
) -> None:
    alice = await asyncio.to_thread(sign_in, servers.a, "alice")
    bob = await asyncio.to_thread(sign_in, servers.b, "bob")
    room = await asyncio.to_thread(alice.room_id, "general")
    alice_token = await asyncio.to_thread(alice.token)
    bob_token = await asyncio.to_thread(bob.token)
    servers.tokens += [alice_token, bob_token]

    async with (
        socket_on(servers.site, servers.a, alice_token) as on_a,
        socket_on(servers.site, servers.b, bob_token) as on_b,
    ):
        for socket in (on_a, on_b):
            await socket.send(json.dumps({"type": "chat.join", "room": room}))
            assert json.loads(await socket.recv())["type"] == "chat.history"

        await on_a.send(
            json.dumps({"type": "chat.send", "room": room, "body": "across"})
        )
        async with asyncio.timeout(5):
            frame = json.loads(await on_b.recv())

    assert frame["type"] == "chat.message"
    assert (frame["message"]["author"], frame["message"]["body"]) == ("alice", "across")
