from collections.abc import Iterator

import pytest
from django.core.cache import cache

from accounts.models import User
from tests.accounts.support import redis_settings_on, sign_in
from tests.conftest import RedisServer, session_exists, session_key_of


@pytest.fixture
def own_redis(private_redis: RedisServer) -> Iterator[RedisServer]:
    # cache.clear() is FLUSHDB on the general cache's database: run it on a
    # server of the test's own, never on the suite's shared one.
    with redis_settings_on(private_redis.url):
        yield private_redis


def test_clearing_the_general_cache_keeps_sessions(
    alice: User, own_redis: RedisServer
) -> None:
    client = sign_in(alice)
    cache.set("warm", "value")

    cache.clear()

    assert cache.get("warm") is None
    assert session_exists(session_key_of(client))
    assert client.get("/").status_code == 200


def test_clearing_the_general_cache_keeps_the_sessions_list(
    alice: User, own_redis: RedisServer
) -> None:
    client = sign_in(alice)

    cache.clear()

    assert client.get("/accounts/sessions/").content.count(b"this device") == 1
