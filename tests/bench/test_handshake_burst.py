"""
A burst of simultaneous handshakes against one daphne process, the
situation of the connect-storm benchmark (bench/storm.py) at a size small
enough for the test suite.

Each handshake spends its token in Redis through the process's shared
asyncio client (dashify.redis.aget_client). More handshakes in flight than
that client's connection pool holds must wait for a connection, not be
refused as if Redis were down.
"""

import asyncio
from collections import Counter

import pytest
import requests
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.conftest import PASSWORD, LiveSite

# redis-py's asyncio connection pool allows 100 connections unless told
# otherwise; three times as many handshakes must still all get in.
BURST = 300
OPEN_TIMEOUT = 30.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def mint_tokens(base_url: str, count: int) -> list[str]:
    """Sign alice in through the login form and mint ``count`` tokens."""
    http = requests.Session()
    http.trust_env = False
    http.get(f"{base_url}/accounts/login/", timeout=10)
    csrf = http.cookies[settings.CSRF_COOKIE_NAME]
    signed_in = http.post(
        f"{base_url}/accounts/login/",
        data={"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": csrf},
        allow_redirects=False,
        timeout=10,
    )
    assert signed_in.status_code == 302, signed_in.text
    headers = {"X-CSRFToken": http.cookies[settings.CSRF_COOKIE_NAME] or ""}
    tokens = []
    for _ in range(count):
        minted = http.post(
            f"{base_url}/accounts/ws-token/", headers=headers, timeout=10
        )
        assert minted.status_code == 200, minted.text
        tokens.append(minted.json()["token"])
    return tokens


async def handshake(url: str, origin: str) -> tuple[str, ClientConnection | None]:
    """Open a socket and read its first frame; return what happened."""
    try:
        websocket = await connect(
            url,
            origin=Origin(origin),
            compression=None,
            proxy=None,
            open_timeout=OPEN_TIMEOUT,
            ping_interval=None,
        )
    except InvalidStatus as error:
        return f"HTTP {error.response.status_code}", None
    first = await asyncio.wait_for(websocket.recv(), OPEN_TIMEOUT)
    return ("hello" if '"type":"hello"' in str(first) else str(first)), websocket


async def test_every_handshake_of_a_burst_beyond_the_redis_pool_is_accepted(
    live_site: LiveSite,
) -> None:
    server = live_site.start_server()
    tokens = mint_tokens(server.url, BURST)

    results = await asyncio.gather(
        *(handshake(f"{server.ws_url}?token={t}", live_site.origin) for t in tokens)
    )
    await asyncio.gather(*(ws.close() for _, ws in results if ws is not None))

    assert Counter(outcome for outcome, _ in results) == {"hello": BURST}
