"""
Chat rooms belong to a tenant: members see the history and every new
message; anyone else is told the room does not exist.
"""

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from realtime.models import ChatMessage
from realtime.protocol import ErrorCode
from tests.realtime.conftest import Content, Person, open_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


async def test_joining_a_room_sends_its_latest_messages_oldest_first(
    alice_in: Person, bob_in: Person, acme: Content
) -> None:
    for body in ["first", "second", "third"]:
        await ChatMessage.objects.acreate(room=acme.room, author=bob_in.user, body=body)
    token = await sync_to_async(alice_in.token)()

    async with open_socket(token) as (socket, _):
        with override_settings(DASHIFY_CHAT_HISTORY=2):
            await socket.send_json_to({"type": "chat.join", "room": acme.room.pk})
            history = await socket.receive_json_from()

    assert history["type"] == "chat.history"
    assert history["room"] == acme.room.pk
    assert [(m["author"], m["body"]) for m in history["messages"]] == [
        ("bob", "second"),
        ("bob", "third"),
    ]


async def test_a_sent_message_reaches_every_member_and_is_stored(
    alice_in: Person, bob_in: Person, acme: Content
) -> None:
    alice_token = await sync_to_async(alice_in.token)()
    bob_token = await sync_to_async(bob_in.token)()
    async with (
        open_socket(alice_token) as (alice, _),
        open_socket(bob_token) as (bob, _),
    ):
        for socket in (alice, bob):
            await socket.send_json_to({"type": "chat.join", "room": acme.room.pk})
            await receive_type(socket, "chat.history")

        await alice.send_json_to(
            {"type": "chat.send", "room": acme.room.pk, "body": "  hello bob  "}
        )
        to_alice = await receive_type(alice, "chat.message")
        to_bob = await receive_type(bob, "chat.message")

    stored = await ChatMessage.objects.select_related("author").aget()
    assert (stored.room_id, stored.author.username, stored.body) == (
        acme.room.pk,
        "alice",
        "hello bob",
    )
    assert to_alice == to_bob
    assert to_bob["message"] == {
        "id": stored.pk,
        "room": acme.room.pk,
        "author": "alice",
        "body": "hello bob",
        "at": stored.created_at.isoformat(),
    }


async def test_another_tenants_room_looks_exactly_like_a_missing_one(
    carol_in: Person, acme: Content, globex: Content
) -> None:
    missing = max(acme.room.pk, globex.room.pk) + 1000
    token = await sync_to_async(carol_in.token)()

    async with open_socket(token) as (socket, _):
        await socket.send_json_to({"type": "chat.join", "room": acme.room.pk, "ref": 1})
        foreign = await socket.receive_json_from()
        await socket.send_json_to({"type": "chat.join", "room": missing, "ref": 1})
        absent = await socket.receive_json_from()

    assert (
        foreign
        == absent
        == {
            "type": "error",
            "code": ErrorCode.NOT_FOUND,
            "message": "No such object.",
            "ref": 1,
        }
    )


async def test_another_tenant_never_receives_a_rooms_messages(
    alice_in: Person, carol_in: Person, acme: Content, globex: Content
) -> None:
    alice_token = await sync_to_async(alice_in.token)()
    carol_token = await sync_to_async(carol_in.token)()
    async with (
        open_socket(alice_token) as (alice, _),
        open_socket(carol_token) as (carol, _),
    ):
        await carol.send_json_to({"type": "chat.join", "room": acme.room.pk})
        await receive_type(carol, "error")
        await carol.send_json_to({"type": "chat.join", "room": globex.room.pk})
        await receive_type(carol, "chat.history")
        await alice.send_json_to({"type": "chat.join", "room": acme.room.pk})
        await receive_type(alice, "chat.history")

        await alice.send_json_to(
            {"type": "chat.send", "room": acme.room.pk, "body": "acme only"}
        )
        await receive_type(alice, "chat.message")
        # Published after alice's message on the same connection, so carol
        # would have received that one first.
        await carol.send_json_to(
            {"type": "chat.send", "room": globex.room.pk, "body": "globex only"}
        )
        first_seen = await carol.receive_json_from()

    assert first_seen["type"] == "chat.message"
    assert first_seen["message"]["body"] == "globex only"


async def test_sending_to_a_room_not_joined_is_not_found_and_stores_nothing(
    alice_in: Person, acme: Content
) -> None:
    token = await sync_to_async(alice_in.token)()

    async with open_socket(token) as (socket, _):
        await socket.send_json_to(
            {"type": "chat.send", "room": acme.room.pk, "body": "hi", "ref": "r1"}
        )
        error = await socket.receive_json_from()

    assert error == {
        "type": "error",
        "code": ErrorCode.NOT_FOUND,
        "message": "No such object.",
        "ref": "r1",
    }
    assert await ChatMessage.objects.acount() == 0


async def test_an_empty_message_is_a_bad_request(
    alice_in: Person, acme: Content
) -> None:
    token = await sync_to_async(alice_in.token)()

    async with open_socket(token) as (socket, _):
        await socket.send_json_to({"type": "chat.join", "room": acme.room.pk})
        await receive_type(socket, "chat.history")
        await socket.send_json_to(
            {"type": "chat.send", "room": acme.room.pk, "body": " "}
        )
        error = await socket.receive_json_from()

    assert error == {
        "type": "error",
        "code": ErrorCode.BAD_REQUEST,
        "message": "body must be a non-empty string.",
    }
