"""
The unread count that a socket's ``hello`` carries, kept in Redis so that
a handshake reads it in the same round trip that spends its token
(accounts.services.aspend_ws_token) instead of counting in the database.

The database stays the truth. Every change to a person's notifications
stores the count it leaves behind, after its transaction commits; a
handshake that finds no count counts once in the database and stores
that; other changes to notifications (the admin's) drop the count.
Two changes committing at the same moment can store their counts in
the wrong order, so a count lives ``TTL`` seconds at most: a wrong one
corrects itself at the next change or within that time.
"""

import logging

from redis.exceptions import RedisError

from dashify.redis import aget_client, get_client, key

logger = logging.getLogger("dashify.realtime")

TTL = 600


def cache_key(user_id: int) -> str:
    return key("unread", user_id)


def remember(user_id: int, count: int) -> None:
    """Store a count just computed after a change (synchronous code)."""
    try:
        get_client("tokens").set(cache_key(user_id), count, ex=TTL)
    except RedisError:
        # The stale count expires on its own; the change itself is stored.
        logger.warning("could not store the unread count of user %s", user_id)


def forget(user_id: int) -> None:
    """Drop a count that a change made elsewhere (the admin) may have outdated."""
    try:
        get_client("tokens").delete(cache_key(user_id))
    except RedisError:
        logger.warning("could not drop the unread count of user %s", user_id)


async def aremember_if_absent(user_id: int, count: int) -> None:
    """Store a count the database gave, unless a change stored a newer one."""
    try:
        await aget_client("tokens").set(cache_key(user_id), count, ex=TTL, nx=True)
    except RedisError:
        logger.warning("could not store the unread count of user %s", user_id)


def parse(value: bytes | None) -> int | None:
    """The cached count, or None if there is none (or it is not a count)."""
    if value is None or not value.isdigit():
        return None
    return int(value)
