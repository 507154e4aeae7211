"""
The WebSocket handshake, first half: the origin check and the token's
verification, both before any I/O, so that the refusals anyone can send
for free cost the server the least. The second half, spending the token's
single use, happens in the consumer (realtime.consumers), after it has
registered for its session's events and before it accepts: a revocation
then either ends the session before the spend (which fails) or reaches
the registered socket. Every consumer behind this middleware must spend.

A refused handshake is closed before acceptance, which the ASGI server
turns into HTTP 403; the client learns nothing about why. The reason is
logged as a category (accounts.tokens.Refusal or a HandshakeRefusal)
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

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

security_logger = logging.getLogger("dashify.security")

# The close code of a refused handshake. Before acceptance the ASGI server
# answers HTTP 403 whatever the code; in-process clients see the code.
REFUSED = 1008

# The longest query string worth parsing: one token and its name.
MAX_QUERY_STRING = tokens.MAX_TOKEN_LENGTH + 16


class HandshakeRefusal(StrEnum):
    ORIGIN = "bad-origin"
    NO_TOKEN = "no-token"  # noqa: S105 (a reason, not a secret)
    REPLAYED = "replayed-or-revoked"
    UNAVAILABLE = "redis-unavailable"
    SESSION_ENDED = "session-ended"


class TokenAuthMiddleware:
    """
    Admit a WebSocket only with an allowed Origin and a valid token; put
    the identity in ``scope["dashify"]`` (an accounts.services.WsIdentity)
    for the consumer, which spends the token. Holds no per-connection
    state.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)

        identity = self.authenticate(scope)
        if isinstance(identity, services.WsIdentity):
            return await self.app({**scope, "dashify": identity}, receive, send)
        log_refusal(identity)
        await deny(receive, send)

    def authenticate(self, scope: Scope) -> services.WsIdentity | str:
        """Return the identity, or the reason for a refusal."""
        if not origin_allowed(scope):
            return HandshakeRefusal.ORIGIN
        token = token_from_query(scope.get("query_string", b""))
        if token is None:
            return HandshakeRefusal.NO_TOKEN
        return services.verify_ws_token(token, int(time.time()))


def log_refusal(reason: str, identity: services.WsIdentity | None = None) -> None:
    security_logger.warning(
        "ws handshake refused reason=%s user=%s tenant=%s",
        reason,
        identity.user_id if identity else "-",
        identity.tenant_id if identity else "-",
    )


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
        await send({"type": "websocket.close", "code": REFUSED})
