"""
The unread count in a socket's hello comes from Redis (realtime.unread),
read in the round trip that spends the token. The notification services
store the count they leave behind, other changes to notifications drop
it, and a handshake that finds none counts in the database and stores
that.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from accounts.models import User
from dashify.redis import get_client
from realtime import services, unread
from realtime.models import Notification
from tests.conftest import RedisServer, signed_in_client
from tests.realtime.conftest import Person, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


def cached_count(user: User) -> bytes | None:
    return cast(bytes | None, get_client("tokens").get(unread.cache_key(user.pk)))


def cached_ttl(user: User) -> int:
    return get_client("tokens").ttl(unread.cache_key(user.pk))


# --- the hello ------------------------------------------------------------------


async def test_hello_carries_the_cached_count_without_counting_in_the_database(
    alice_in: Person,
) -> None:
    # Alice has no notification at all: only the cache can say 7.
    get_client("tokens").set(unread.cache_key(alice_in.user.pk), 7)
    token = await sync_to_async(alice_in.token)()

    async with open_socket(token) as (_, hello):
        pass

    assert hello["unread"] == 7


async def test_without_a_cached_count_hello_counts_in_the_database_and_caches_it(
    alice_in: Person,
) -> None:
    for text in ("One", "Two"):
        await Notification.objects.acreate(user=alice_in.user, text=text)
    await Notification.objects.acreate(
        user=alice_in.user, text="Seen", read_at=timezone.now()
    )
    assert cached_count(alice_in.user) is None
    token = await sync_to_async(alice_in.token)()

    async with open_socket(token) as (_, hello):
        pass

    assert hello["unread"] == 2
    assert cached_count(alice_in.user) == b"2"
    assert 0 < cached_ttl(alice_in.user) <= unread.TTL


# --- changes to notifications ---------------------------------------------------


def test_notify_leaves_the_new_unread_count_in_redis(alice: User) -> None:
    services.notify(user=alice, text="First")
    services.notify(user=alice, text="Second")

    assert cached_count(alice) == b"2"
    assert 0 < cached_ttl(alice) <= unread.TTL


def test_mark_read_leaves_the_new_unread_count_in_redis(alice: User) -> None:
    first, _ = services.notify(user=alice, text="First")
    services.notify(user=alice, text="Second")

    services.mark_read(user_id=alice.pk, notification_id=first.pk)

    assert cached_count(alice) == b"1"
    assert 0 < cached_ttl(alice) <= unread.TTL


def mark_read_by_hand(notification: Notification) -> None:
    notification.read_at = timezone.now()
    notification.save()


@pytest.mark.parametrize(
    "change",
    [mark_read_by_hand, Notification.delete],
    ids=["saved", "deleted"],
)
def test_a_notification_changed_outside_the_services_drops_the_cached_count(
    alice: User, change: Callable[[Notification], object]
) -> None:
    notification, _ = services.notify(user=alice, text="Report ready")
    assert cached_count(alice) == b"1"

    change(notification)

    assert cached_count(alice) is None


def test_the_cached_count_is_dropped_when_the_change_commits_not_before(
    alice: User,
) -> None:
    notification, _ = services.notify(user=alice, text="Report ready")

    with transaction.atomic():
        notification.delete()
        inside = cached_count(alice)
    after = cached_count(alice)

    # Dropped before the commit, the count could be cached again from the
    # database as it was before the change.
    assert (inside, after) == (b"1", None)


# --- Redis commands per handshake -------------------------------------------------


@pytest.fixture
def own_redis(private_redis: RedisServer) -> Iterator[RedisServer]:
    """
    Point the tokens purpose and the fan-out of this process at a Redis of
    the test's own, so that every command it executes is this test's.
    """
    with override_settings(
        DASHIFY_REDIS_URLS={**settings.DASHIFY_REDIS_URLS, "tokens": private_redis.url},
        DASHIFY_FANOUT_REDIS_URLS=[private_redis.url],
        # No session check may run while commands are counted.
        DASHIFY_WS_SESSION_CHECK=3600,
    ):
        yield private_redis


@contextmanager
def commands_sent_to(server: RedisServer) -> Iterator[list[str]]:
    """
    Collect the names of the commands that clients send to ``server`` in
    the block, as MONITOR reports them, leaving out those that a script
    runs: INFO commandstats and total_commands_processed count both, so
    they cannot tell one script call from several round trips.
    """
    marker = "end-of-count"
    # Connected before MONITOR starts, so that its connection handshake
    # is not counted when it sends the marker.
    control = redis.Redis(port=server.port, socket_timeout=5)
    control.ping()
    watcher = redis.Redis(port=server.port, socket_timeout=5)
    sent: list[str] = []
    try:
        with watcher.monitor() as monitor:
            yield sent
            control.echo(marker)
            while (entry := monitor.next_command())["command"] != f"ECHO {marker}":
                if entry["client_type"] != "lua":
                    sent.append(entry["command"].split()[0].lower())
    finally:
        control.close()
        watcher.close()


async def test_a_handshake_sends_one_redis_command_once_the_process_listens(
    own_redis: RedisServer, alice: User
) -> None:
    # Signed in only now, so that the session is marked alive on the
    # test's own Redis.
    alice_in = Person(alice, await sync_to_async(signed_in_client)(alice))
    warm_up = await sync_to_async(alice_in.token)()
    async with open_socket(warm_up):
        pass
    token = await sync_to_async(alice_in.token)()

    with commands_sent_to(own_redis) as sent:
        async with open_socket(token) as (_, hello):
            pass

    # The token's spend, which also reads the cached count: no EXISTS of
    # the session, no SUBSCRIBE, no GET of the count.
    assert hello["unread"] == 0
    assert sent in (["evalsha"], ["eval"])
