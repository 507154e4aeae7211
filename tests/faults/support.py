"""
Driving live daphne processes from outside, as a browser or an attacker
would: signing in over HTTP with ``requests``, opening sockets with the
``websockets`` client, raw handshakes with hand-written headers, and
reading the pub/sub side of Redis.

Shared by the fault tests and the browser-attack tests. Every wait here is
bounded.
"""

import asyncio
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import redis
import requests
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime import groups
from tests.conftest import PASSWORD, LiveServer, LiveSite, RedisServer

HTTP_TIMEOUT = 10.0
# Liveness bounds, not performance targets.
HANDSHAKE_BOUND = 3.0
FRAME_BOUND = 5.0

Result = TypeVar("Result")


def on_private_redis(site: LiveSite, server: RedisServer, **env: str) -> LiveSite:
    """
    Point every server ``site`` starts from now on at ``server`` (all Redis
    purposes, by database index), with ``env`` added to their environment.
    """
    site.env.update({"REDIS_URL": server.url, **env})
    return site


def timed(call: Callable[[], Result]) -> tuple[Result, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


# --- HTTP -----------------------------------------------------------------------


@dataclass
class Browser:
    """A cookie jar signed in over HTTP through one server."""

    server: LiveServer
    http: requests.Session

    @property
    def csrf_token(self) -> str:
        return str(self.http.cookies[settings.CSRF_COOKIE_NAME])

    @property
    def session_key(self) -> str:
        return str(self.http.cookies[settings.SESSION_COOKIE_NAME])

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(
            self.server.url + path,
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
            **kwargs,
        )

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(
            self.server.url + path,
            headers={"X-CSRFToken": self.csrf_token},
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
            **kwargs,
        )

    def token(self) -> str:
        response = self.post("/accounts/ws-token/")
        assert response.status_code == HTTPStatus.OK, response.text
        return response.json()["token"]

    def room_id(self, name: str) -> int:
        page = self.get("/").text
        found = re.search(rf'<option value="(\d+)">#{name}<', page)
        assert found is not None, f"no room #{name} on the dashboard"
        return int(found.group(1))


def new_http_session() -> requests.Session:
    http = requests.Session()
    # Talk to 127.0.0.1 directly whatever proxy the environment names.
    http.trust_env = False
    return http


def try_sign_in(server: LiveServer, username: str) -> tuple[Browser, int]:
    """Post the login form; return the browser and the answer's status."""
    http = new_http_session()
    http.get(server.url + "/accounts/login/", timeout=HTTP_TIMEOUT)
    response = http.post(
        server.url + "/accounts/login/",
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": http.cookies[settings.CSRF_COOKIE_NAME],
        },
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )
    return Browser(server, http), response.status_code


def sign_in(server: LiveServer, username: str) -> Browser:
    browser, status = try_sign_in(server, username)
    assert status == HTTPStatus.FOUND, status
    return browser


# --- WebSockets -------------------------------------------------------------------


@asynccontextmanager
async def socket_with_hello(
    server: LiveServer, token: str, origin: str
) -> AsyncIterator[tuple[ClientConnection, dict]]:
    """An accepted socket and its hello frame; closed on the way out."""
    async with asyncio.timeout(HANDSHAKE_BOUND + FRAME_BOUND):
        sock = await connect(
            f"{server.ws_url}?token={token}",
            origin=origin,  # type: ignore[arg-type]
            proxy=None,
            open_timeout=HANDSHAKE_BOUND,
            close_timeout=FRAME_BOUND,
        )
        hello = json.loads(await sock.recv())
    try:
        assert hello["type"] == "hello", hello
        yield sock, hello
    finally:
        await sock.close()


@asynccontextmanager
async def socket_on(
    server: LiveServer, token: str, origin: str
) -> AsyncIterator[ClientConnection]:
    """An accepted socket whose hello frame was read."""
    async with socket_with_hello(server, token, origin) as (sock, _):
        yield sock


async def handshake(server: LiveServer, token: str, origin: str) -> int | str:
    """Return "accepted", or the HTTP status that refused the handshake."""
    try:
        async with socket_on(server, token, origin):
            return "accepted"
    except InvalidStatus as refusal:
        return refusal.response.status_code


async def next_frame(sock: ClientConnection, within: float = FRAME_BOUND) -> dict:
    async with asyncio.timeout(within):
        return json.loads(await sock.recv())


async def frame_of_type(
    sock: ClientConnection, frame_type: str, within: float = FRAME_BOUND
) -> dict:
    """Return the next frame of ``frame_type``, skipping others."""
    async with asyncio.timeout(within):
        while True:
            frame = json.loads(await sock.recv())
            if frame["type"] == frame_type:
                return frame


async def frames_until_closed(
    sock: ClientConnection, within: float
) -> tuple[list[dict], int | None]:
    """Return the frames received before the server closed, and its close code."""
    frames: list[dict] = []
    async with asyncio.timeout(within):
        try:
            while True:
                frames.append(json.loads(await sock.recv()))
        except ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else None


def raw_handshake(
    port: int, path: str, headers: list[tuple[str, str]], within: float = 5.0
) -> int:
    """
    Send a WebSocket upgrade request with exactly ``headers`` besides the
    upgrade ones (repeated or missing Origin headers included, which
    WebSocket clients will not write) and return the answer's status.
    """
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers),
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=within) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    assert status_line.startswith("HTTP/1.1 "), repr(answer[:200])
    return int(status_line.split()[1])


# --- the pub/sub side of Redis ---------------------------------------------------
# Group fan-out has gone through two designs: channels-redis's pub/sub layer
# ("<prefix>:asgi:__group__<group>") and realtime.fanout's hub
# ("<prefix>:fan:<group>"). The tests count subscribers through these
# helpers, which recognise both, so that they measure the product's
# behaviour rather than its current channel naming.


def group_channel_names(group: str) -> list[str]:
    """The channels a group's events may travel on (realtime.fanout)."""
    prefix = settings.DASHIFY_REDIS_KEY_PREFIX
    if groups.is_personal(group):
        return [f"{prefix}:fan-personal"]
    return [f"{prefix}:asgi:__group__{group}", f"{prefix}:fan:{group}"]


def pubsub_channels(client: redis.Redis) -> list[str]:
    """Every pub/sub channel with a subscriber under the key prefix."""
    prefix = settings.DASHIFY_REDIS_KEY_PREFIX
    names = client.pubsub_channels(f"{prefix}*")
    return sorted(n.decode() if isinstance(n, bytes) else n for n in names)


def group_subscribers(client: redis.Redis, group: str) -> int:
    """How many connections listen for ``group``, whichever naming is in use."""
    names = group_channel_names(group)
    return sum(count for _, count in client.pubsub_numsub(*names))


def wait_until(
    condition: Callable[[], bool], within: float, pause: float = 0.1
) -> bool:
    """Poll ``condition`` until it holds or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
