"""
The WebSocket handshake, all of it before the socket is accepted.

1. The Origin and the token's form, signature and claims are checked with
   no I/O, so that the refusals anyone can send for free cost the least.
2. The socket is registered for its session's and person's events in this
   process's hub (realtime.fanout): a dictionary insert, no Redis.
3. The token's single use is spent in one Redis round trip, which also
   checks that the session is alive and reads the cached unread count.

Registering before spending closes the race with a revocation: a
revocation deletes the session before it publishes, so it either comes
first and the spend fails, or its event reaches the registered socket
(the consumer then refuses or closes it). The middleware keeps the
registration for the life of the connection and removes it at the end.

A refused handshake is closed before acceptance, which the ASGI server
turns into HTTP 403; the client learns nothing about why. The reason is
logged as a category (accounts.tokens.Refusal or a HandshakeRefusal)
with the user and tenant ids once they are known, never with the token,
the query string or a header value.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from redis.exceptions import RedisError

from accounts import services, tokens
from accounts.exceptions import RedisUnavailable
from realtime import fanout, groups, unread

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

security_logger = logging.getLogger("dashify.security")

# The close code of a refused handshake. Before acceptance the ASGI server
# answers HTTP 403 whatever the code; in-process clients see the code.
REFUSED = 1008

# Seconds a handshake may wait for Redis (a free connection, the spend)
# before it is refused as unavailable: a frozen Redis must not hold
# handshakes open, however many arrive at once.
REDIS_DEADLINE = 2.5

# The longest query string worth parsing: one token and its name.
MAX_QUERY_STRING = tokens.MAX_TOKEN_LENGTH + 16


class HandshakeRefusal(StrEnum):
    ORIGIN = "bad-origin"
    NO_TOKEN = "no-token"  # noqa: S105 (a reason, not a secret)
    REPLAYED = "replayed-or-revoked"
    UNAVAILABLE = "redis-unavailable"
    SESSION_ENDED = "session-ended"
    NO_ROUTE = "no-route"


@dataclass(frozen=True, slots=True)
class Admission:
    """What an admitted socket's consumer finds in ``scope["dashify"]``."""

    identity: services.WsIdentity
    # Registered in the socket's personal groups, waiting to be bound.
    member: fanout.Member
    # The person's unread count, if Redis had it cached.
    unread: int | None


class TokenAuthMiddleware:
    """
    Admit a WebSocket only with an allowed Origin and an unspent, valid
    token; put an Admission in ``scope["dashify"]``. Holds no
    per-connection state of its own.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)

        identity = self.verify(scope)
        if not isinstance(identity, services.WsIdentity):
            log_refusal(identity)
            await deny(receive, send)
            return

        hub, member = fanout.hub(), fanout.Member()
        personal = (
            groups.session_group(identity.binding),
            groups.user_group(identity.user_id),
        )
        try:
            refusal, cached = await self.register_and_spend(
                hub, member, personal, identity
            )
            if refusal is not None:
                log_refusal(refusal, identity)
                await deny(receive, send)
                return
            security_logger.info(
                "ws handshake accepted user=%s tenant=%s",
                identity.user_id,
                identity.tenant_id,
            )
            admission = Admission(identity, member, unread.parse(cached))
            await self.app({**scope, "dashify": admission}, receive, send)
        finally:
            for group in personal:
                await hub.leave(group, member)

    def verify(self, scope: Scope) -> services.WsIdentity | str:
        """Return the identity, or the reason for a refusal (no I/O)."""
        if not origin_allowed(scope):
            return HandshakeRefusal.ORIGIN
        token = token_from_query(scope.get("query_string", b""))
        if token is None:
            return HandshakeRefusal.NO_TOKEN
        return services.verify_ws_token(token, int(time.time()))

    async def register_and_spend(
        self,
        hub: fanout.Hub,
        member: fanout.Member,
        personal: tuple[str, ...],
        identity: services.WsIdentity,
    ) -> tuple[str | None, bytes | None]:
        """Return a refusal or None, and the cached unread count if any."""
        try:
            async with asyncio.timeout(REDIS_DEADLINE):
                for group in personal:
                    await hub.join(group, member)
                spent = await services.aspend_ws_token(
                    identity, also_read=unread.cache_key(identity.user_id)
                )
        except (RedisUnavailable, RedisError, OSError, TimeoutError):
            return HandshakeRefusal.UNAVAILABLE, None
        if not spent.ok:
            return HandshakeRefusal.REPLAYED, None
        return None, spent.extra


async def refuse_unrouted(scope: Scope, receive: Receive, send: Send) -> None:
    """A socket on any path but the one route: refused before any token check."""
    log_refusal(HandshakeRefusal.NO_ROUTE)
    await deny(receive, send)


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
