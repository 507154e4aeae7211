"""
The WebSocket protocol's vocabulary: close codes, error codes, limits.
docs/protocol.md describes every message; names here match it one to one.
"""

from enum import IntEnum, StrEnum


class CloseCode(IntEnum):
    """Close codes the server sends after the socket was accepted."""

    NORMAL = 1000
    # The frame exceeded DASHIFY_WS_MAX_FRAME_BYTES. (Not 1009: daphne's
    # WebSocket layer lets an application send only 1000 and 3000-4999.)
    MESSAGE_TOO_BIG = 4010
    # The session that opened the socket ended: signed out, revoked,
    # password changed, user deactivated or deleted. Do not reconnect;
    # sign in again.
    SESSION_ENDED = 4001
    # The session continues under a new key (password changed on this
    # device). Reconnect with a fresh token.
    SESSION_ROTATED = 4002
    # A binary frame: the protocol is JSON text only.
    UNSUPPORTED_DATA = 4003
    # More frames than DASHIFY_WS_RATE per second (after DASHIFY_WS_BURST).
    RATE_LIMITED = 4008
    # DASHIFY_WS_SEND_BUFFER frames were waiting to be written to this
    # socket (a client too slow to keep up). Reconnect, and resynchronise
    # from history and snapshots.
    SEND_BUFFER_FULL = 4009
    # Dashify failed to handle a frame (a bug on the server's side). The
    # socket is closed cleanly; reconnect with backoff.
    SERVER_ERROR = 4011


class ErrorCode(StrEnum):
    """Stable codes carried by ``error`` frames; the socket stays open."""

    BAD_JSON = "bad_json"
    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
