"""
The WebSocket handshake: origin check, token verification and single-use
spending, all before the socket is accepted.

A refused handshake is closed before acceptance, which the ASGI server
turns into HTTP 403; the client learns nothing about why. The reason is
logged as a category (accounts.tokens.Refusal or a handshake reason below)
with the user and tenant ids once they are known, never with the token,
the query string or a header value.
"""

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings

from accounts import services, tokens
from accounts.exceptions import RedisUnavailable

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

security_logger = logging.getLogger("dashify.security")

# The longest query string worth parsing: one token and its name.
MAX_QUERY_STRING = tokens.MAX_TOKEN_LENGTH + 16


class HandshakeRefusal(StrEnum):
    ORIGIN = "bad-origin"
    NO_TOKEN = "no-token"  # noqa: S105 (a reason, not a secret)
    REPLAYED = "replayed-or-revoked"
    UNAVAILABLE = "redis-unavailable"


class TokenAuthMiddleware:
    """
    Admit a WebSocket only with an allowed Origin and an unspent, valid
    token; put the identity in ``scope["dashify"]`` (an
    accounts.services.WsIdentity). Holds no per-connection state.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)

        identity = await self.authenticate(scope)
        if isinstance(identity, services.WsIdentity):
            security_logger.info(
                "ws handshake accepted user=%s tenant=%s",
                identity.user_id,
                identity.tenant_id,
            )
            return await self.app({**scope, "dashify": identity}, receive, send)

        reason, user_id, tenant_id = identity
        security_logger.warning(
            "ws handshake refused reason=%s user=%s tenant=%s",
            reason,
            user_id or "-",
            tenant_id or "-",
        )
        await deny(receive, send)

    async def authenticate(
        self, scope: Scope
    ) -> services.WsIdentity | tuple[str, int | None, int | None]:
        """Return the identity, or (reason, user id, tenant id) of a refusal."""
        if not origin_allowed(scope):
            return HandshakeRefusal.ORIGIN, None, None

        token = token_from_query(scope.get("query_string", b""))
        if token is None:
            return HandshakeRefusal.NO_TOKEN, None, None

        identity = services.verify_ws_token(token, int(time.time()))
        if isinstance(identity, tokens.Refusal):
            return identity, None, None

        try:
            spent = await services.aspend_ws_token(identity)
        except RedisUnavailable:
            return HandshakeRefusal.UNAVAILABLE, identity.user_id, identity.tenant_id
        if not spent:
            return HandshakeRefusal.REPLAYED, identity.user_id, identity.tenant_id
        return identity


def origin_allowed(scope: Scope) -> bool:
    """True if the one Origin header is exactly an allowed origin."""
    origins = [value for name, value in scope.get("headers", []) if name == b"origin"]
    if len(origins) != 1:
        return False
    try:
        origin = origins[0].decode("ascii").lower()
    except UnicodeDecodeError:
        return False
    allowed = {o.lower().rstrip("/") for o in settings.DASHIFY_ALLOWED_ORIGINS}
    return origin in allowed


def token_from_query(query_string: bytes) -> str | None:
    """Return the single ``token`` parameter, or None if absent or repeated."""
    if len(query_string) > MAX_QUERY_STRING:
        return None
    try:
        pairs = parse_qsl(
            query_string.decode("ascii"), keep_blank_values=True, max_num_fields=4
        )
    except (UnicodeDecodeError, ValueError):
        return None
    values = [value for name, value in pairs if name == "token"]
    if len(values) != 1 or not values[0]:
        return None
    return values[0]


async def deny(receive: Receive, send: Send) -> None:
    """Refuse the handshake: the server answers HTTP 403."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008})
