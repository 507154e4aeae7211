"""Reads: what a person (or an admin) sees of live sessions."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import caches
from django_redis import get_redis_connection
from user_agents import parse as parse_user_agent

from accounts.services import session_binding
from dashify.redis import key


@dataclass(frozen=True)
class SessionInfo:
    handle: str
    device: str
    ip_address: str
    signed_in: datetime
    last_seen: datetime
    is_current: bool


def _describe(user_agent: str) -> str:
    if not user_agent:
        return "Unknown device"
    agent = parse_user_agent(user_agent)
    browser = agent.browser.family
    system = agent.os.family
    if browser == "Other" and system == "Other":
        return user_agent[:60]
    return f"{browser} on {system}"


def _when(timestamp: int | float) -> datetime:
    return datetime.fromtimestamp(int(timestamp), tz=UTC)


def live_sessions(user_id: int, current_key: str | None = None) -> list[SessionInfo]:
    """
    List a user's live sessions, most recently used first.

    Entries whose session expired on its own are dropped from the index on
    the way, so the list never shows a session that no longer works.
    """
    from accounts.sessions import SessionStore

    client = get_redis_connection("sessions")
    entries = client.hgetall(key("user-sessions", user_id))
    if not entries:
        return []
    seen = client.hgetall(key("user-seen", user_id))

    keys = [k.decode() for k in entries]
    store = SessionStore()
    alive = caches[settings.SESSION_CACHE_ALIAS].get_many(
        [store.raw_cache_key(k) for k in keys]
    )
    expired = [k for k in keys if store.raw_cache_key(k) not in alive]
    if expired:
        client.hdel(key("user-sessions", user_id), *expired)
        client.hdel(key("user-seen", user_id), *expired)

    sessions = []
    for session_key in keys:
        if session_key in expired:
            continue
        meta = json.loads(entries[session_key.encode()])
        last_seen = seen.get(session_key.encode(), meta["signed_in"])
        sessions.append(
            SessionInfo(
                handle=session_binding(session_key),
                device=_describe(meta.get("user_agent", "")),
                ip_address=meta.get("ip_address", ""),
                signed_in=_when(meta["signed_in"]),
                last_seen=_when(float(last_seen)),
                is_current=session_key == current_key,
            )
        )
    sessions.sort(key=lambda s: (not s.is_current, -s.last_seen.timestamp()))
    return sessions
