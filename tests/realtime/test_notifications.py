"""
Notifications reach only the sockets of the person they are for, and
reading one updates every socket of that person.
"""

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from realtime import services
from realtime.models import Notification
from realtime.protocol import ErrorCode
from tests.realtime.conftest import Person, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

notify = sync_to_async(services.notify)


def payload_of(notification: Notification, read: bool = False) -> dict[str, Any]:
    return {
        "id": notification.pk,
        "text": notification.text,
        "link": notification.link,
        "at": notification.created_at.isoformat(),
        "read": read,
    }


async def test_notify_pushes_the_notification_and_unread_count_to_its_user(
    alice_in: Person,
) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (alice, _):
        notification, created = await notify(
            user=alice_in.user, text="Report ready", link="/reports/1"
        )
        frame = await alice.receive_json_from()

    assert created is True
    assert frame == {
        "type": "notification.created",
        "notification": payload_of(notification),
        "unread": 1,
    }


async def test_notify_pushes_nothing_to_another_user(
    alice_in: Person, bob_in: Person
) -> None:
    token = await sync_to_async(bob_in.token)()
    async with open_socket(token) as (bob, _):
        await notify(user=alice_in.user, text="For alice")
        # Published after alice's, so bob would have received hers first.
        await notify(user=bob_in.user, text="For bob")
        frame = await bob.receive_json_from()

    assert frame["notification"]["text"] == "For bob"


async def test_reading_a_notification_stores_it_and_pushes_unread_zero(
    alice_in: Person,
) -> None:
    notification, _ = await notify(user=alice_in.user, text="Report ready")
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (alice, hello):
        await alice.send_json_to({"type": "notification.read", "id": notification.pk})
        frame = await alice.receive_json_from()

    assert hello["unread"] == 1
    assert frame == {"type": "notification.read", "id": notification.pk, "unread": 0}
    stored = await Notification.objects.aget(pk=notification.pk)
    assert stored.read_at is not None


async def test_reading_someone_elses_notification_is_not_found(
    alice_in: Person, bob: User
) -> None:
    theirs, _ = await notify(user=bob, text="For bob")
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (alice, _):
        await alice.send_json_to({"type": "notification.read", "id": theirs.pk})
        frame = await alice.receive_json_from()

    assert frame == {
        "type": "error",
        "code": ErrorCode.NOT_FOUND,
        "message": "No such object.",
    }
    stored = await Notification.objects.aget(pk=theirs.pk)
    assert stored.read_at is None


async def test_a_repeated_idempotency_key_creates_nothing(alice_in: Person) -> None:
    first, _ = await notify(user=alice_in.user, text="Once", idempotency_key="job-1")

    again, created = await notify(
        user=alice_in.user, text="Once", idempotency_key="job-1"
    )

    assert (again.pk, created) == (first.pk, False)
    assert await Notification.objects.acount() == 1


async def test_a_repeated_idempotency_key_pushes_nothing(alice_in: Person) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (alice, _):
        await notify(user=alice_in.user, text="Once", idempotency_key="job-1")
        await alice.receive_json_from()

        await notify(user=alice_in.user, text="Once", idempotency_key="job-1")
        await notify(user=alice_in.user, text="Next", idempotency_key="job-2")
        frame = await alice.receive_json_from()

    assert (frame["notification"]["text"], frame["unread"]) == ("Next", 2)
