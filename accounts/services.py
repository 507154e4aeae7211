"""
Writes: the per-user session index, revocation, and WebSocket token markers.

Redis layout (keys under DASHIFY_REDIS_KEY_PREFIX):

sessions database
    ``user-sessions:<user id>``  hash, session key -> JSON (device, IP,
                                 signed-in time)
    ``user-seen:<user id>``      hash, session key -> last-seen time
tokens database
    ``session-alive:<binding>``  present while the session is signed in;
                                 checked when a token is spent, and polled
                                 for open sockets (realtime.watch)
    ``ws-jti:<jti>``             string, a keyed digest of the session
                                 binding, user and tenant of an unspent
                                 token; expires with the token
    ``ws-sid:<binding>``         set of the unspent token ids a session
                                 minted; deleting it voids them all

A token is spent by removing its id from both, atomically, in one script
that also checks the session's liveness marker; if any is gone (spent,
evicted, flushed, session ended) or the digest does not match the token's
claims, it is refused.
"""

import hashlib
import json
import logging
import time
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings
from django.core.cache import caches
from django.utils.crypto import salted_hmac
from django_redis import get_redis_connection
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import NoScriptError, RedisError

from accounts import tokens
from accounts.exceptions import RedisUnavailable
from accounts.models import User
from accounts.signals import session_ended
from dashify.redis import aget_client, get_client, key

logger = logging.getLogger("dashify.accounts")
security_logger = logging.getLogger("dashify.security")


class EndReason(StrEnum):
    """Why a session stopped existing under its key."""

    SIGNED_OUT = "signed-out"
    REVOKED = "revoked"
    PASSWORD_CHANGED = "password-changed"  # noqa: S105 (a reason, not a secret)
    DEACTIVATED = "deactivated"
    DELETED = "deleted"
    TENANT_CHANGED = "tenant-changed"
    # Same person, new key (password change on this device): sockets
    # reconnect with a fresh token instead of showing "signed out".
    ROTATED = "rotated"


def session_binding(session_key: str) -> str:
    """Return the keyed hash that ties a token to a session (not the key)."""
    return salted_hmac(
        "dashify.accounts.session-binding", session_key, algorithm="sha256"
    ).hexdigest()[:32]


# --- the session index --------------------------------------------------------


def _index(user_id: int) -> str:
    return key("user-sessions", user_id)


def _seen(user_id: int) -> str:
    return key("user-seen", user_id)


def _alive(session_key: str) -> str:
    return key("session-alive", session_binding(session_key))


def record_session(
    *, user_id: int, session_key: str, user_agent: str, ip_address: str
) -> None:
    """Add a freshly signed-in session to its user's index."""
    meta = {
        "user_agent": user_agent[:400],
        "ip_address": ip_address,
        "signed_in": int(time.time()),
    }
    _list_session(user_id, session_key, json.dumps(meta))
    security_logger.info("session started user=%s", user_id)


def refresh_session_alive(user_id: int, session_key: str) -> None:
    """
    Extend a signed-in session's liveness marker and its user's index to
    the session's full age (each save of a session restarts its expiry),
    listing the session again should the index have lost it: revocation
    must never miss a session that still works.
    """
    _list_session(user_id, session_key, meta=None)


def _list_session(user_id: int, session_key: str, meta: str | None) -> None:
    """
    Index a session under its user, with ``meta`` or, when None, with what
    the index already holds (an unknown device if nothing), and mark it
    alive; all for the session's full age.
    """
    age = settings.SESSION_COOKIE_AGE
    now = int(time.time())
    pipe = get_redis_connection("sessions").pipeline()
    if meta is None:
        unknown = {"user_agent": "", "ip_address": "", "signed_in": now}
        pipe.hsetnx(_index(user_id), session_key, json.dumps(unknown))
        pipe.hsetnx(_seen(user_id), session_key, now)
    else:
        pipe.hset(_index(user_id), session_key, meta)
        pipe.hset(_seen(user_id), session_key, now)
    pipe.expire(_index(user_id), age)
    pipe.expire(_seen(user_id), age)
    pipe.execute()
    get_client("tokens").set(_alive(session_key), user_id, ex=age)


def _unlist_sessions(user_id: int, session_keys: list[str]) -> None:
    pipe = get_redis_connection("sessions").pipeline()
    pipe.hdel(_index(user_id), *session_keys)
    pipe.hdel(_seen(user_id), *session_keys)
    pipe.execute()


def touch_session(user_id: int, session_key: str) -> None:
    """Record that a session was used just now."""
    get_redis_connection("sessions").hset(_seen(user_id), session_key, int(time.time()))


def rotate_session(user_id: int, old_key: str, new_key: str) -> None:
    """Move a session's index entry to its new key and end the old key's sockets."""
    # The old entry may be gone already (an admin changing their own
    # password revokes every session first); the survivor is indexed anyway
    # so that later revocations still reach it.
    meta = get_redis_connection("sessions").hget(_index(user_id), old_key)
    _unlist_sessions(user_id, [old_key])
    _list_session(user_id, new_key, meta.decode() if meta is not None else None)
    _void_tokens_and_sockets(user_id, [old_key], EndReason.ROTATED)


def forget_session(
    user_id: int, session_key: str, reason: EndReason = EndReason.SIGNED_OUT
) -> None:
    """Drop a deleted session from the index, void its tokens, end its sockets."""
    _unlist_sessions(user_id, [session_key])
    _void_tokens_and_sockets(user_id, [session_key], reason)


def revoke_sessions(
    user_id: int,
    reason: EndReason,
    *,
    only: str | None = None,
    keep: str | None = None,
) -> int:
    """
    Delete sessions of a user and return how many were live.

    With ``only`` (a session's binding, as shown on the sessions pages in
    place of the key), delete that session if and only if it is the user's;
    with ``keep`` (a session key), delete all but that one. Unknown values
    are ignored, so nobody can end somebody else's session by naming it.
    """
    client = get_redis_connection("sessions")
    known = [k.decode() for k in client.hkeys(_index(user_id))]
    if only is not None:
        targets = [k for k in known if session_binding(k) == only]
    else:
        targets = [k for k in known if k != keep]
    if not targets:
        return 0

    store = _session_store()
    sessions_cache = caches[settings.SESSION_CACHE_ALIAS]
    cache_keys = [store.raw_cache_key(k) for k in targets]
    live = len(sessions_cache.get_many(cache_keys))
    sessions_cache.delete_many(cache_keys)

    _unlist_sessions(user_id, targets)
    _void_tokens_and_sockets(user_id, targets, reason)
    security_logger.info(
        "sessions revoked user=%s count=%s reason=%s", user_id, live, reason
    )
    return live


def _session_store():  # type: ignore[no-untyped-def]
    from accounts.sessions import SessionStore

    return SessionStore()


def _void_tokens_and_sockets(
    user_id: int, session_keys: list[str], reason: EndReason
) -> None:
    bindings = [session_binding(k) for k in session_keys]
    get_client("tokens").delete(
        *(key("ws-sid", b) for b in bindings),
        *(key("session-alive", b) for b in bindings),
    )
    for binding in bindings:
        session_ended.send(
            sender=EndReason, user_id=user_id, binding=binding, reason=reason
        )


async def asessions_alive(bindings: list[str]) -> list[bool] | None:
    """
    Whether each session (by binding) is still signed in, in one round
    trip; None if Redis cannot tell right now (callers keep sockets open
    then).

    Revocation normally closes sockets at once, over pub/sub; this check
    catches what that path can miss: a revocation published while a
    server process was reconnecting to Redis, a session that expired on
    its own, or a Redis that restarted empty.
    """
    try:
        async with aget_client("tokens").pipeline(transaction=False) as pipe:
            for binding in bindings:
                pipe.exists(key("session-alive", binding))
            found = await pipe.execute()
    except RedisError:
        return None
    return [bool(count) for count in found]


# --- sign-in throttling -----------------------------------------------------------


def _failure_keys(username: str, ip_address: str) -> list[str]:
    # Normalise as the login form does (strip, NFKC) and fold case, so
    # " alice" and "ａlice" count against alice.
    normalised = unicodedata.normalize("NFKC", username.strip()).casefold()
    digest = salted_hmac("dashify.accounts.login-throttle", normalised).hexdigest()
    return [key("login-fail", "user", digest[:32]), key("login-fail", "ip", ip_address)]


def login_throttled(username: str, ip_address: str) -> bool:
    """True if this username or address failed to sign in too often lately."""
    try:
        counts = caches["default"].get_many(_failure_keys(username, ip_address))
    except (RedisError, ConnectionInterrupted):
        # The general cache being down must not lock everyone out.
        return False
    return any(int(v) >= settings.DASHIFY_LOGIN_MAX_FAILURES for v in counts.values())


def record_login_failure(username: str, ip_address: str) -> None:
    cache = caches["default"]
    for name in _failure_keys(username, ip_address):
        try:
            cache.add(name, 0, settings.DASHIFY_LOGIN_WINDOW)
            cache.incr(name)
        except (RedisError, ConnectionInterrupted, ValueError):
            continue
    security_logger.warning("sign-in failed ip=%s", ip_address)


# --- WebSocket tokens -----------------------------------------------------------


@dataclass(frozen=True)
class WsIdentity:
    """Who a spent WebSocket token speaks for."""

    user_id: int
    tenant_id: int
    binding: str
    jti: str


def _ws_secrets() -> list[str]:
    return [
        settings.DASHIFY_WS_TOKEN_SECRET,
        *settings.DASHIFY_WS_TOKEN_PREVIOUS_SECRETS,
    ]


def issue_ws_token(user: User, session_key: str) -> tokens.IssuedToken:
    """
    Mint a single-use WebSocket token for a signed-in session and record it
    as unspent. Raises RedisUnavailable if the marker cannot be written.
    """
    binding = session_binding(session_key)
    ttl = settings.DASHIFY_WS_TOKEN_TTL
    issued = tokens.issue_token(
        tokens.WS_TOKEN,
        {"sub": str(user.pk), "tid": user.tenant_id, "sid": binding},
        now=int(time.time()),
        lifetime=ttl,
        secret=settings.DASHIFY_WS_TOKEN_SECRET,
        kid=settings.DASHIFY_WS_TOKEN_KID,
    )
    pipe = get_client("tokens").pipeline()
    pipe.set(
        key("ws-jti", issued.jti),
        _marker(binding, user.pk, user.tenant_id),
        ex=ttl,
    )
    pipe.sadd(key("ws-sid", binding), issued.jti)
    pipe.expire(key("ws-sid", binding), ttl)
    try:
        pipe.execute()
    except RedisError as error:
        raise RedisUnavailable from error
    security_logger.info(
        "ws token issued user=%s tenant=%s jti=%s",
        user.pk,
        user.tenant_id,
        issued.jti[:8],
    )
    return issued


def verify_ws_token(token: object, now: int) -> WsIdentity | tokens.Refusal:
    """Check a WebSocket token's form, signature and claims (no Redis)."""
    claims = tokens.verify_token(
        tokens.WS_TOKEN,
        token,
        now=now,
        secrets=_ws_secrets(),
        leeway=settings.DASHIFY_WS_TOKEN_LEEWAY,
        max_lifetime=settings.DASHIFY_WS_TOKEN_TTL,
    )
    if isinstance(claims, tokens.Refusal):
        return claims
    return WsIdentity(
        user_id=int(claims["sub"]),
        tenant_id=claims["tid"],
        binding=claims["sid"],
        jti=claims["jti"],
    )


def _marker(binding: str, user_id: int, tenant_id: int) -> str:
    # The marker names everything the token vouches for, keyed: a token
    # re-signed with another user or tenant (by someone holding the
    # secret) no longer matches the marker its jti was minted with.
    return salted_hmac(
        "dashify.accounts.ws-token",
        f"{binding}:{user_id}:{tenant_id}",
        algorithm="sha256",
    ).hexdigest()[:32]


# Spend a token: its session must be alive and both markers present and
# matching. Everything runs in one script, so two handshakes racing with
# the same token (in one process or several) see exactly one success, and
# a token is burnt even when refused. A fourth key, if given, is read on
# success, so that a handshake needs no second round trip for it.
_SPEND_SCRIPT = """
local marker = redis.call('GETDEL', KEYS[1])
local member = redis.call('SREM', KEYS[2], ARGV[2])
local alive = redis.call('EXISTS', KEYS[3])
if marker == ARGV[1] and member == 1 and alive == 1 then
  if KEYS[4] then
    return {1, redis.call('GET', KEYS[4])}
  end
  return {1}
end
return {0}
"""
# Redis names scripts by their SHA-1 (EVALSHA); not a security use.
_SPEND_SHA = hashlib.sha1(_SPEND_SCRIPT.encode()).hexdigest()  # noqa: S324


@dataclass(frozen=True, slots=True)
class Spent:
    """The outcome of spending a token, and the value read alongside."""

    ok: bool
    extra: bytes | None = None


async def aspend_ws_token(identity: WsIdentity, *, also_read: str = "") -> Spent:
    """
    Spend a verified token's single use, in one Redis round trip; ``ok`` is
    False if it was already spent or voided or its session has ended. With
    ``also_read`` (a full Redis key), that key's value comes back as
    ``extra`` when the token is spent. Raises RedisUnavailable if Redis
    cannot answer.
    """
    client = aget_client("tokens")
    keys = [
        key("ws-jti", identity.jti),
        key("ws-sid", identity.binding),
        key("session-alive", identity.binding),
        *([also_read] if also_read else []),
    ]
    marker = _marker(identity.binding, identity.user_id, identity.tenant_id)
    try:
        try:
            result = await client.evalsha(
                _SPEND_SHA, len(keys), *keys, marker, identity.jti
            )
        except NoScriptError:
            result = await client.eval(
                _SPEND_SCRIPT, len(keys), *keys, marker, identity.jti
            )
    except RedisError as error:
        raise RedisUnavailable from error
    if result[0] != 1:
        return Spent(ok=False)
    return Spent(ok=True, extra=result[1] if len(result) > 1 else None)
