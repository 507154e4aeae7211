"""
The session engine: Django's cache sessions on the "sessions" Redis alias,
plus the bookkeeping that makes revocation instant.

Every authenticated session is listed in its user's index (see
accounts.services), so that "sign out everywhere" deletes a known set of
keys instead of scanning the keyspace. Deleting a session through this
engine, for whatever reason, also forgets it in the index, voids the
WebSocket tokens it minted and closes the sockets it opened.
"""

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore
from django.core.cache.backends.base import BaseCache
from django_redis.exceptions import ConnectionInterrupted

from accounts import services
from accounts.exceptions import RedisUnavailable


class SessionStore(CacheSessionStore):
    cache_key_prefix = "session:"

    # Set or provided by the stock engine; django-stubs does not declare them.
    _cache: BaseCache
    _session: dict[str, Any]

    def load(self) -> dict[str, Any]:
        # The stock engine treats any cache error as "no session", which
        # would show a signed-in person the login page during an outage
        # and then fail on submit. Report the outage instead.
        try:
            data = self._cache.get(self.cache_key)
        except ConnectionInterrupted as error:
            raise RedisUnavailable from error
        if data is not None:
            return data
        self._session_key = None
        return {}

    def save(self, must_create: bool = False) -> None:
        super().save(must_create)
        user_id = _user_id(
            self._session_cache if hasattr(self, "_session_cache") else None
        )
        if user_id is not None and self.session_key:
            # The liveness marker lives as long as the session it vouches
            # for, whose expiry each save pushes back.
            services.refresh_session_alive(user_id, self.session_key)

    def cycle_key(self) -> None:
        data = self._session
        old_key = self.session_key
        self.create()
        self._session_cache = data
        if not old_key:
            return
        # Delete without the revocation side effects of delete(): the
        # person is still signed in, only under a new key.
        super().delete(old_key)
        user_id = _user_id(data)
        if user_id is not None and self.session_key:
            services.rotate_session(user_id, old_key, self.session_key)

    def delete(self, session_key: str | None = None) -> None:
        session_key = session_key or self.session_key
        if not session_key:
            return
        # flush() clears the data before deleting, so ask Redis who owned it.
        user_id = _user_id(self._cache.get(self.cache_key_prefix + session_key))
        super().delete(session_key)
        if user_id is not None:
            services.forget_session(user_id, session_key)

    async def adelete(self, session_key: str | None = None) -> None:
        await sync_to_async(self.delete)(session_key)

    async def acycle_key(self) -> None:
        await sync_to_async(self.cycle_key)()

    def raw_cache_key(self, session_key: str) -> str:
        """Return the cache key (before the cache's own prefix) of a session."""
        return self.cache_key_prefix + session_key


def _user_id(data: dict[str, Any] | None) -> int | None:
    value = (data or {}).get(SESSION_KEY)
    return int(value) if value is not None else None
