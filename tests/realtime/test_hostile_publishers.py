"""
Events that no Dashify process would publish (not UTF-8, not JSON, not an
object) reaching a server's subscriptions, as from a buggy publisher or
another deployment on the same key prefix: they are dropped, and the
process still hears what comes after them, revocations first.
"""

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings

from realtime import fanout, groups
from realtime.protocol import CloseCode
from tests.realtime.conftest import Person, open_socket, receive_until_close
from tests.realtime.test_revocation import post

pytestmark = pytest.mark.django_db(transaction=True)

JUNK = {
    "not-utf-8": b"\xff\xfe",
    "not-json": b"{",
    "not-an-object": b"[1, 2]",
    "object-without-type": b'{"reason": "signed-out"}',
}


@pytest.mark.parametrize("junk", JUNK.values(), ids=JUNK.keys())
async def test_junk_on_the_personal_channel_leaves_revocation_working(
    alice_in: Person, junk: bytes
) -> None:
    client = redis.Redis.from_url(settings.DASHIFY_FANOUT_REDIS_URLS[0])
    token = await sync_to_async(alice_in.token)()
    try:
        async with open_socket(token) as (socket, hello):
            group = groups.user_group(hello["user"]).encode()
            for payload in (junk, group + fanout.SEPARATOR.encode() + junk):
                client.publish(fanout.personal_channel(), payload)
            await sync_to_async(post)(alice_in.client, "/accounts/logout/", {})

            frames, code = await receive_until_close(socket, within=2.0)
    finally:
        client.close()

    assert [frame["type"] for frame in frames] == ["session.ended"]
    assert code == CloseCode.SESSION_ENDED
