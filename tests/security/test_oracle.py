"""
No oracle: a client cannot tell one refusal from another. Every refused
handshake is the same close before acceptance (HTTP 403 through daphne,
byte for byte), and every refused service token gets the same status,
headers and body; the reason exists only in the security log.
"""

import re
import secrets
import socket
import time
from typing import Any

import pytest
import requests
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings

from accounts import tokens
from dashify.asgi import application
from tests.conftest import PASSWORD, LiveSite
from tests.security.conftest import (
    ACCEPT,
    DROP,
    Mutation,
    Surface,
    WebSocketSurface,
    allowed_origin,
    hs,
    notification_body,
    now_plus,
    other_secret,
    post_notification,
    ws_path,
)

pytestmark = pytest.mark.django_db(transaction=True)

# One representative mutation per verification category; both kinds.
BY_CATEGORY: dict[str, Mutation] = {
    "malformed": Mutation(header={"alg": "none"}),
    "bad-signature": Mutation(sign=hs(other_secret)),
    "bad-header": Mutation(header={"jku": "http://127.0.0.1:9/keys"}),
    "bad-claims": Mutation(claims={"jti": DROP}),
    "wrong-audience": Mutation(claims={"aud": "dashify:elsewhere"}),
    "expired": Mutation(
        claims={"iat": now_plus(-100), "nbf": now_plus(-100), "exp": now_plus(-60)}
    ),
    "not-yet-valid": Mutation(
        claims={"iat": now_plus(60), "nbf": now_plus(60), "exp": now_plus(90)}
    ),
    "issued-in-future": Mutation(claims={"iat": now_plus(60), "exp": now_plus(90)}),
    "lifetime-too-long": Mutation(claims={"exp": now_plus(86_400)}),
}


async def arefusal_seen_by_client(path: str, origin: str) -> list[dict[str, Any]]:
    """Every message the application sent the client for this handshake."""
    client = WebsocketCommunicator(
        application, path, headers=[(b"origin", origin.encode())]
    )
    try:
        await client.send_input({"type": "websocket.connect"})
        seen = [await client.receive_output(timeout=5)]
        while not await client.receive_nothing(timeout=0.05):
            seen.append(await client.receive_output(timeout=5))
    finally:
        await client.disconnect()
    return seen


refusal_seen_by_client = async_to_sync(arefusal_seen_by_client)


@pytest.mark.parametrize("surface", ["ws"], indirect=True)
def test_every_handshake_refusal_looks_the_same_to_the_client(
    surface: Surface,
) -> None:
    spent = surface.forge()
    surface.check(spent, ACCEPT)
    attempts: dict[str, tuple[str, str]] = {
        category: (ws_path(surface.forge(mutation)), allowed_origin())
        for category, mutation in BY_CATEGORY.items()
    }
    attempts["bad-origin"] = (ws_path(surface.forge()), "http://evil.example")
    attempts["no-token"] = ("/ws/?token=", allowed_origin())
    attempts["replayed-or-revoked"] = (ws_path(spent), allowed_origin())
    surface.caplog.clear()

    seen = {
        category: refusal_seen_by_client(path, origin)
        for category, (path, origin) in attempts.items()
    }

    assert {repr(messages) for messages in seen.values()} == {
        repr([{"type": "websocket.close", "code": 1008}])
    }
    logged = {
        re.search(r"reason=(\S+)", r.getMessage()).group(1)  # type: ignore[union-attr]
        for r in surface.caplog.records
        if "ws handshake refused" in r.getMessage()
    }
    assert logged == set(attempts)


@pytest.mark.parametrize("surface", ["api"], indirect=True)
def test_every_invalid_service_token_gets_the_same_answer(surface: Surface) -> None:
    spent = surface.forge()
    surface.check(spent, ACCEPT)
    authorizations = {
        category: f"Bearer {surface.forge(mutation)}"
        for category, mutation in BY_CATEGORY.items()
    }
    authorizations["wrong-issuer"] = (
        f"Bearer {surface.forge(Mutation(claims={'iss': 'dashify-web'}))}"
    )
    authorizations["not-bearer"] = f"Basic {surface.forge()}"
    authorizations["replayed"] = f"Bearer {spent}"
    surface.caplog.clear()

    answers = {
        category: post_notification(
            notification_body(surface.alice), authorization, idempotency_key=category
        )
        for category, authorization in authorizations.items()
    }

    assert {
        (r.status_code, r.content, tuple(sorted(r.items()))) for r in answers.values()
    } == {
        next(
            (r.status_code, r.content, tuple(sorted(r.items())))
            for r in answers.values()
        )
    }
    assert next(iter(answers.values())).status_code == 401
    logged = {
        re.search(r"reason=(\S+)", r.getMessage()).group(1)  # type: ignore[union-attr]
        for r in surface.caplog.records
        if "internal api refused" in r.getMessage()
    }
    assert logged == set(authorizations)


# --- through a real server ------------------------------------------------------------


def raw_handshake(port: int, path: str, origin: str) -> bytes:
    """Send a WebSocket upgrade by hand and return the whole answer."""
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"Origin: {origin}\r\n\r\n"
    ).encode()
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if chunks[0].startswith(b"HTTP/1.1 101"):
                break
    return b"".join(chunks)


def without_date(response: bytes) -> bytes:
    return re.sub(rb"(?im)^date: [^\r\n]*\r\n", b"", response)


class OffSite(WebSocketSurface):
    """
    Forges WebSocket tokens for a server with a database of its own: a
    made-up session and no marker, which is enough for every refusal that
    comes before spending.
    """

    def __init__(self) -> None:  # the fixture's setup is for the test database
        self.now = int(time.time())

    def issue(self) -> str:
        claims = {"sub": "1", "tid": 1, "sid": secrets.token_hex(16)}
        return tokens.issue_token(
            tokens.WS_TOKEN,
            claims,
            now=int(time.time()),
            lifetime=settings.DASHIFY_WS_TOKEN_TTL,
            secret=settings.DASHIFY_WS_TOKEN_SECRET,
            kid=settings.DASHIFY_WS_TOKEN_KID,
        ).token


def signed_in_token(base_url: str) -> str:
    """Sign in as the demo alice over HTTP and mint a token."""
    session = requests.Session()
    session.get(f"{base_url}/accounts/login/", timeout=10)
    csrf = session.cookies[settings.CSRF_COOKIE_NAME]
    response = session.post(
        f"{base_url}/accounts/login/",
        data={"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base_url}/accounts/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text
    minted = session.post(
        f"{base_url}/accounts/ws-token/",
        headers={
            "X-CSRFToken": str(session.cookies.get(settings.CSRF_COOKIE_NAME)),
            "Referer": f"{base_url}/",
        },
        timeout=10,
    )
    assert minted.status_code == 200, minted.text
    return minted.json()["token"]


@pytest.mark.slow
def test_every_handshake_refusal_is_the_same_http_403_through_daphne(
    live_site: LiveSite,
) -> None:
    server = live_site.start_server()
    origin = live_site.origin
    off_site = OffSite()
    spent = signed_in_token(server.url)
    assert raw_handshake(server.port, ws_path(spent), origin).startswith(
        b"HTTP/1.1 101"
    )
    attempts: dict[str, tuple[str, str]] = {
        category: (ws_path(off_site.forge(mutation)), origin)
        for category, mutation in BY_CATEGORY.items()
    }
    attempts["bad-origin"] = (
        ws_path(signed_in_token(server.url)),
        "http://evil.example",
    )
    attempts["no-token"] = ("/ws/", origin)
    attempts["replayed-or-revoked"] = (ws_path(spent), origin)

    answers = {
        category: without_date(raw_handshake(server.port, path, sent_origin))
        for category, (path, sent_origin) in attempts.items()
    }

    assert len(set(answers.values())) == 1
    assert next(iter(answers.values())).startswith(b"HTTP/1.1 403")
    log = server.log()
    assert sorted(set(re.findall(r"ws handshake refused reason=(\S+)", log))) == sorted(
        attempts
    )
