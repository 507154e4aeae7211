"""
Helpers for driving the dashboard socket through the real ASGI stack:
dashify.asgi.application with its handshake middleware, the real consumer
and the channels-redis pub/sub layer on the suite's Redis.
"""

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts.models import Tenant, User
from dashify.asgi import application
from realtime import services
from realtime.models import Board, Card, Column, Room
from tests.conftest import mint_token, signed_in_client

SECURITY_LOGGER = "dashify.security"


def allowed_origin() -> str:
    return settings.DASHIFY_ALLOWED_ORIGINS[0]


def ws_path(token: str | None) -> str:
    return "/ws/" if token is None else f"/ws/?token={token}"


def communicator(path: str, origins: list[str] | None = None) -> WebsocketCommunicator:
    """A communicator for ``path``, sending each of ``origins`` as an Origin."""
    if origins is None:
        origins = [allowed_origin()]
    headers = [(b"origin", origin.encode()) for origin in origins]
    return WebsocketCommunicator(application, path, headers=headers)


async def handshake_accepted(path: str, origins: list[str] | None = None) -> bool:
    """Attempt one handshake through the real stack; True if it was accepted."""
    socket = communicator(path, origins)
    try:
        connected, _ = await socket.connect()
    finally:
        await socket.disconnect()
    return bool(connected)


@asynccontextmanager
async def open_socket(token: str) -> AsyncIterator[tuple[WebsocketCommunicator, dict]]:
    """Yield an accepted socket and its hello frame; disconnect on the way out."""
    socket = communicator(ws_path(token))
    try:
        connected, _ = await socket.connect()
        assert connected, "the handshake was refused"
        hello = await socket.receive_json_from()
        assert hello["type"] == "hello"
        yield socket, hello
    finally:
        await socket.disconnect()


async def receive_until_close(
    socket: WebsocketCommunicator, within: float = 1.0
) -> tuple[list[dict[str, Any]], int]:
    """Return the frames received before the server closed, and the close code."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while True:
            message = await socket.receive_output(timeout=within)
            if message["type"] == "websocket.close":
                return frames, message["code"]
            frames.append(json.loads(message["text"]))


async def receive_type(
    socket: WebsocketCommunicator, frame_type: str, within: float = 1.0
) -> dict[str, Any]:
    """Return the next frame of ``frame_type``, skipping others."""
    async with asyncio.timeout(within):
        while True:
            frame = await socket.receive_json_from(timeout=within)
            if frame["type"] == frame_type:
                return frame


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == SECURITY_LOGGER and "refused" in record.getMessage()
    ]


# --- compact JWS by hand ------------------------------------------------------------
# PyJWT refuses to write most of what these tests need (unknown algorithms,
# bad signatures, odd headers), so the tokens are assembled here.


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def to_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def encode_segment(value: object) -> str:
    return b64url(to_json(value))


def sign_raw(
    header: bytes,
    payload: bytes,
    secret: str,
    digest: Callable[..., Any] = hashlib.sha256,
) -> str:
    """Sign the exact bytes given, however unusual their JSON."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(mac)}"


def sign(
    header: object,
    payload: object,
    secret: str,
    digest: Callable[..., Any] = hashlib.sha256,
) -> str:
    return sign_raw(to_json(header), to_json(payload), secret, digest)


def ws_header(**changes: Any) -> dict[str, Any]:
    header = {"alg": "HS256", "typ": "dashify-ws+jwt", "kid": "ws-1"}
    header.update(changes)
    return header


def ws_claims(now: int, **changes: Any) -> dict[str, Any]:
    claims = {
        "sub": "1",
        "tid": 1,
        "sid": "ab" * 16,
        "aud": "dashify:websocket",
        "jti": "cd" * 16,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    claims.update(changes)
    return claims


# --- people and content -------------------------------------------------------------


@dataclass
class Person:
    user: User
    client: Client

    def token(self) -> str:
        return mint_token(self.client)


@pytest.fixture
def alice_in(alice: User) -> Person:
    return Person(alice, signed_in_client(alice))


@pytest.fixture
def bob_in(bob: User) -> Person:
    return Person(bob, signed_in_client(bob))


@pytest.fixture
def carol_in(carol: User) -> Person:
    return Person(carol, signed_in_client(carol))


@dataclass
class Content:
    """A tenant's demo room and board; cards all start in the first column."""

    room: Room
    board: Board
    columns: list[Column]
    cards: list[Card]


def content_of(tenant: Tenant) -> Content:
    services.ensure_demo_content(tenant)
    board = Board.objects.get(tenant=tenant, name="Roadmap")
    return Content(
        room=Room.objects.get(tenant=tenant, name="general"),
        board=board,
        columns=list(board.columns.order_by("position")),
        cards=list(board.cards.order_by("position")),
    )


@pytest.fixture
def acme(alice: User, bob: User) -> Content:
    return content_of(alice.tenant)


@pytest.fixture
def globex(carol: User) -> Content:
    return content_of(carol.tenant)
