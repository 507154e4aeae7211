"""
Frames crafted to crash or exhaust the consumer are answered with error
frames, and the socket keeps working.
"""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from realtime.models import ChatMessage
from realtime.protocol import ErrorCode
from tests.realtime.conftest import Content, Person, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def answer_to(person: Person, frame: str) -> dict[str, object]:
    token = await sync_to_async(person.token)()
    async with open_socket(token) as (socket, _):
        await socket.send_to(text_data=frame)
        answer = await socket.receive_json_from()
        await socket.send_json_to({"type": "ping"})
        assert await socket.receive_json_from() == {"type": "pong"}
    return answer


async def test_deeply_nested_json_is_bad_json(alice_in: Person) -> None:
    answer = await answer_to(alice_in, "[" * 5000 + "]" * 5000)

    assert answer["code"] == ErrorCode.BAD_JSON


async def test_a_lone_surrogate_in_a_chat_message_is_refused_and_not_stored(
    alice_in: Person, acme: Content
) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        await socket.send_json_to({"type": "chat.join", "room": acme.room.pk})
        await socket.receive_json_from()
        await socket.send_to(
            text_data=json.dumps(
                {"type": "chat.send", "room": acme.room.pk, "body": "\ud800"}
            )
        )
        answer = await socket.receive_json_from()

    assert (answer["code"], answer["message"]) == (
        ErrorCode.BAD_REQUEST,
        "body must be valid Unicode text.",
    )
    assert not await sync_to_async(ChatMessage.objects.exists)()


@pytest.mark.parametrize(
    "due_at",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1900-01-01T00:00:00"],
)
async def test_a_due_date_out_of_range_is_a_bad_request(
    due_at: str, alice_in: Person, acme: Content
) -> None:
    frame = {"type": "card.update", "card": acme.cards[0].pk, "due_at": due_at}

    answer = await answer_to(alice_in, json.dumps(frame))

    assert answer["code"] == ErrorCode.BAD_REQUEST


async def test_joining_faster_than_the_join_budget_is_rate_limited(
    alice_in: Person, acme: Content
) -> None:
    token = await sync_to_async(alice_in.token)()
    with override_settings(DASHIFY_WS_JOIN_RATE=1, DASHIFY_WS_JOIN_BURST=2):
        async with open_socket(token) as (socket, _):
            types = []
            for _ in range(3):
                await socket.send_json_to({"type": "chat.join", "room": acme.room.pk})
                answer = await socket.receive_json_from()
                types.append(answer.get("code", answer["type"]))

    assert types == ["chat.history", "chat.history", ErrorCode.RATE_LIMITED]


async def test_a_full_board_takes_no_more_cards(
    alice_in: Person, acme: Content
) -> None:
    frame = {
        "type": "card.create",
        "board": acme.board.pk,
        "column": acme.columns[0].pk,
        "title": "one too many",
    }
    with override_settings(DASHIFY_BOARD_MAX_CARDS=len(acme.cards)):
        answer = await answer_to(alice_in, json.dumps(frame))

    assert (answer["code"], answer["message"]) == (
        ErrorCode.BAD_REQUEST,
        f"A board holds at most {len(acme.cards)} cards.",
    )


async def test_events_carry_non_ascii_text_as_utf8_not_escapes(
    alice_in: Person, acme: Content
) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        await socket.send_json_to({"type": "chat.join", "room": acme.room.pk})
        await socket.receive_json_from()
        await socket.send_json_to(
            {"type": "chat.send", "room": acme.room.pk, "body": "😀 café"}
        )
        raw = await socket.receive_from()

    assert "😀 café" in raw
    assert "\\u" not in raw
