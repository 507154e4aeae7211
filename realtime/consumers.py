"""
The dashboard socket. Authentication happened at the handshake
(realtime.middleware); from here on the connection is the credential, and
it ends when the session that opened it ends.

Client frames are JSON objects with a dotted ``type``; ``chat.join`` is
handled by ``on_chat_join``. Events for the socket's groups arrive through
realtime.fanout, already serialised, and are written to the client as
they are; only ``session.ended`` is acted upon.
"""

import asyncio
import json
import logging
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from accounts.services import EndReason, WsIdentity
from realtime import fanout, groups, selectors, services, unread, watch
from realtime.exceptions import Invalid, NotFound
from realtime.middleware import REFUSED, Admission, HandshakeRefusal, log_refusal
from realtime.protocol import CloseCode, ErrorCode

logger = logging.getLogger("dashify.realtime")
security_logger = logging.getLogger("dashify.security")


class TokenBucket:
    """Allow ``rate`` frames a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.capacity = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class RateLimited(Exception):
    """A client asked for history or snapshots faster than allowed."""


def _id(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    # Ids are 64-bit in the database; anything larger names nothing.
    if type(value) is not int or not 0 < value < 2**63:
        raise Invalid(f"{name} must be a positive integer id.")
    return value


# Seconds a closing socket may take to be told why and closed.
FAREWELL_TIMEOUT = 1.0

# Group events travel through realtime.fanout, not a Channels layer; with
# no layer, Channels opens no per-socket channel (one SUBSCRIBE each).
NO_CHANNEL_LAYER = "dashify-no-channel-layer"


class DashboardConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = NO_CHANNEL_LAYER
    identity: WsIdentity
    # True from the first moment the server decides to close.
    ending = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' own dispatch first closes stale database connections
        # through a worker-thread hop, for every frame. This consumer
        # touches the database only through database_sync_to_async, which
        # does that in its worker thread around each call; the hop per
        # frame would buy nothing.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        # TokenAuthMiddleware adds this key; channels-stubs' scope type
        # lists only the keys Channels itself sets.
        admission: Admission = self.scope["dashify"]  # type: ignore[typeddict-item]
        self.identity = admission.identity
        self.bucket = TokenBucket(settings.DASHIFY_WS_RATE, settings.DASHIFY_WS_BURST)
        # Joins answer with history or a snapshot, up to hundreds of KiB
        # for a frame of a few bytes: a budget of their own.
        self.join_bucket = TokenBucket(
            settings.DASHIFY_WS_JOIN_RATE, settings.DASHIFY_WS_JOIN_BURST
        )
        # The rooms and boards joined; the middleware holds the personal
        # groups for the life of the connection.
        self.joined: set[str] = set()
        # Why the session ended, if it did before the hello was sent.
        self.ended_early: str | None = None
        self.member = admission.member
        self.member.bind(
            send=self.send_frame,
            on_event=self.on_group_event,
            on_overflow=self.on_overflow,
        )
        if self.ended_early is not None:
            # Revoked between the spend and now.
            log_refusal(HandshakeRefusal.SESSION_ENDED, self.identity)
            await self.close(REFUSED)
            return

        await self.accept()
        watch.ensure_running()
        user_id = self.identity.user_id
        count = admission.unread
        if count is None:
            count = await database_sync_to_async(selectors.unread_count)(user_id)
            await unread.aremember_if_absent(user_id, count)
        await self.send_event(
            {
                "type": "hello",
                "user": user_id,
                "tenant": self.identity.tenant_id,
                "unread": count,
                "limits": {
                    "max_frame_bytes": settings.DASHIFY_WS_MAX_FRAME_BYTES,
                    "rate": settings.DASHIFY_WS_RATE,
                    "burst": settings.DASHIFY_WS_BURST,
                },
            }
        )
        # Events that arrived during the handshake follow the hello.
        self.member.start()
        if self.ended_early is not None:
            await self.session_ended(self.ended_early)

    async def disconnect(self, code: int) -> None:
        for group in list(getattr(self, "joined", ())):
            await fanout.hub().leave(group, self.member)
        logger.info(
            "ws closed user=%s tenant=%s code=%s",
            self.identity.user_id,
            self.identity.tenant_id,
            code,
        )

    async def join(self, group: str) -> None:
        await fanout.hub().join(group, self.member)
        self.joined.add(group)

    async def leave(self, group: str) -> None:
        if group in self.joined:
            self.joined.discard(group)
            await fanout.hub().leave(group, self.member)

    # --- frames from the client --------------------------------------------

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        if self.ending:
            # Closing (the session ended, the outbox overflowed, a bad
            # frame): nothing more the client sends is acted upon.
            return
        if text_data is None:
            await self.close(CloseCode.UNSUPPORTED_DATA)
            return
        # Count characters first: a frame cannot be smaller in UTF-8 bytes.
        if len(text_data) > settings.DASHIFY_WS_MAX_FRAME_BYTES or (
            len(text_data.encode("utf-8", "surrogatepass"))
            > settings.DASHIFY_WS_MAX_FRAME_BYTES
        ):
            logger.warning("ws frame too big user=%s", self.identity.user_id)
            await self.close(CloseCode.MESSAGE_TOO_BIG)
            return
        if not self.bucket.take():
            logger.warning("ws rate limit user=%s", self.identity.user_id)
            await self.close(CloseCode.RATE_LIMITED)
            return

        try:
            payload = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send_error(ErrorCode.BAD_JSON, "Frames must be JSON objects.")
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            await self.send_error(
                ErrorCode.BAD_REQUEST, 'Frames must be objects with a "type".'
            )
            return

        handler = self.HANDLERS.get(payload["type"])
        if handler is None:
            await self.send_error(
                ErrorCode.UNKNOWN_TYPE, "Unknown type; see docs/protocol.md.", payload
            )
            return
        try:
            await handler(self, payload)
        except NotFound:
            await self.send_error(ErrorCode.NOT_FOUND, "No such object.", payload)
        except Invalid as error:
            await self.send_error(ErrorCode.BAD_REQUEST, str(error), payload)
        except RateLimited:
            await self.send_error(
                ErrorCode.RATE_LIMITED, "Too many joins; slow down.", payload
            )
        except RedisError:
            logger.warning("Redis unreachable during %s", payload["type"])
            await self.send_error(
                ErrorCode.UNAVAILABLE, "Temporarily unavailable; retry.", payload
            )
        except Exception:
            # A bug of ours must cost this socket, cleanly, and nothing more:
            # an exception escaping here would skip disconnect() and leave
            # its group memberships and tasks behind.
            logger.exception("ws handler %s failed", payload["type"])
            await self.close(CloseCode.SERVER_ERROR)

    async def on_ping(self, payload: dict[str, Any]) -> None:
        await self.send_event({"type": "pong"})

    async def on_chat_join(self, payload: dict[str, Any]) -> None:
        room_id = _id(payload, "room")
        if not self.join_bucket.take():
            raise RateLimited
        room = await database_sync_to_async(selectors.room_for)(
            self.identity.tenant_id, room_id
        )
        if room is None:
            raise NotFound
        await self.join(groups.room_group(self.identity.tenant_id, room.pk))
        history = await database_sync_to_async(selectors.recent_messages)(room)
        await self.send_event(
            {"type": "chat.history", "room": room.pk, "messages": history}
        )

    async def on_chat_leave(self, payload: dict[str, Any]) -> None:
        await self.leave(
            groups.room_group(self.identity.tenant_id, _id(payload, "room"))
        )

    async def on_chat_send(self, payload: dict[str, Any]) -> None:
        room_id = _id(payload, "room")
        if groups.room_group(self.identity.tenant_id, room_id) not in self.joined:
            raise NotFound
        await database_sync_to_async(services.post_message)(
            tenant_id=self.identity.tenant_id,
            user_id=self.identity.user_id,
            room_id=room_id,
            body=payload.get("body"),
        )

    async def on_board_subscribe(self, payload: dict[str, Any]) -> None:
        board_id = _id(payload, "board")
        if not self.join_bucket.take():
            raise RateLimited
        board = await database_sync_to_async(selectors.board_for)(
            self.identity.tenant_id, board_id
        )
        if board is None:
            raise NotFound
        await self.join(groups.board_group(self.identity.tenant_id, board.pk))
        # Subscribe first, then snapshot: an event racing the snapshot is
        # seen twice at worst (idempotent on the client), never missed.
        snapshot = await database_sync_to_async(selectors.board_snapshot)(board)
        await self.send_event({"type": "board.snapshot", "board": snapshot})

    async def on_board_unsubscribe(self, payload: dict[str, Any]) -> None:
        await self.leave(
            groups.board_group(self.identity.tenant_id, _id(payload, "board"))
        )

    async def on_card_create(self, payload: dict[str, Any]) -> None:
        await database_sync_to_async(services.create_card)(
            tenant_id=self.identity.tenant_id,
            board_id=_id(payload, "board"),
            column_id=payload.get("column"),
            title=payload.get("title"),
        )

    async def on_card_update(self, payload: dict[str, Any]) -> None:
        await database_sync_to_async(services.update_card)(
            tenant_id=self.identity.tenant_id,
            card_id=_id(payload, "card"),
            changes=payload,
        )

    async def on_card_move(self, payload: dict[str, Any]) -> None:
        await database_sync_to_async(services.move_card)(
            tenant_id=self.identity.tenant_id,
            card_id=_id(payload, "card"),
            column_id=payload.get("column"),
            position=payload.get("position"),
        )

    async def on_notification_read(self, payload: dict[str, Any]) -> None:
        await database_sync_to_async(services.mark_read)(
            user_id=self.identity.user_id, notification_id=_id(payload, "id")
        )

    HANDLERS = {
        "ping": on_ping,
        "chat.join": on_chat_join,
        "chat.leave": on_chat_leave,
        "chat.send": on_chat_send,
        "board.subscribe": on_board_subscribe,
        "board.unsubscribe": on_board_unsubscribe,
        "card.create": on_card_create,
        "card.update": on_card_update,
        "card.move": on_card_move,
        "notification.read": on_notification_read,
    }

    # --- events from the socket's groups -------------------------------------

    def on_group_event(self, event: dict[str, Any]) -> bool:
        """Act on control events; let the rest through to the client."""
        if event.get("type") == "session.ended":
            reason = str(event.get("reason", EndReason.REVOKED))
            if self.member.started:
                asyncio.get_running_loop().create_task(self.session_ended(reason))
            else:
                self.ended_early = reason
            return False
        return True

    def on_overflow(self) -> None:
        logger.warning("ws send buffer full user=%s", self.identity.user_id)
        asyncio.get_running_loop().create_task(self.end(CloseCode.SEND_BUFFER_FULL))

    async def session_ended(self, reason: str) -> None:
        rotated = reason == EndReason.ROTATED
        await self.end(
            CloseCode.SESSION_ROTATED if rotated else CloseCode.SESSION_ENDED,
            farewell={"type": "session.ended", "reason": reason},
        )

    # --- output ---------------------------------------------------------------

    async def end(self, code: int, farewell: dict[str, Any] | None = None) -> None:
        """
        Stop serving the client at once, then tell it why and close, for
        at most FAREWELL_TIMEOUT seconds. A client that does not read may
        keep the server's write waiting (uvicorn applies backpressure);
        its frames are ignored from the first moment all the same, and the
        server's keepalive drops the connection.
        """
        if self.ending:
            return
        self.ending = True
        try:
            async with asyncio.timeout(FAREWELL_TIMEOUT):
                if farewell is not None:
                    await self.send_event(farewell)
                await self.close(code)
        except Exception:
            # Timed out, or the client went away first: nothing to tell.
            logger.info("ws close not completed user=%s", self.identity.user_id)

    async def close(
        self, code: int | bool | None = None, reason: str | None = None
    ) -> None:
        self.ending = True
        # The WebSocket protocol layer under daphne accepts only a plain
        # int, not an IntEnum member.
        await super().close(code=int(code) if code else None, reason=reason)

    async def send_frame(self, frame: str) -> None:
        await self.send(text_data=frame)

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.send_frame(fanout.encode(event))

    async def send_error(
        self, code: ErrorCode, message: str, request: dict[str, Any] | None = None
    ) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if request is not None and isinstance(request.get("ref"), str | int):
            frame["ref"] = request["ref"]
        await self.send_event(frame)
