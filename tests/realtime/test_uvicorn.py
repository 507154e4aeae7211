"""
uvicorn, the documented alternative to daphne, serving the real
application: sockets open and close as under daphne, and its logs, which
name every WebSocket's path and query string, never show a token.
"""

import asyncio
from http import HTTPStatus

import pytest

from tests.conftest import LiveSite
from tests.realtime.test_multiprocess import handshake, sign_in

pytestmark = pytest.mark.slow


async def test_uvicorn_admits_a_token_once_and_logs_neither_use(
    live_site: LiveSite,
) -> None:
    server = live_site.start_server("uvicorn")
    alice = await asyncio.to_thread(sign_in, server, "alice")
    token = await asyncio.to_thread(alice.token)

    outcomes = [
        await handshake(live_site, server, token),
        await handshake(live_site, server, token),
    ]
    server.stop()
    log = server.log()

    assert outcomes == ["accepted", HTTPStatus.FORBIDDEN]
    assert "WebSocket /ws/?token=[redacted]" in log
    assert [part for part in token.split(".") if part in log] == []
