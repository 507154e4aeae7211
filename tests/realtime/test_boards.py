"""
Boards: a subscriber gets a snapshot, then every card change made over the
socket or over HTTP; ids of another tenant's boards, columns and cards are
answered as if they did not exist.
"""

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from realtime import selectors
from realtime.models import Board, Card, Column
from realtime.protocol import ErrorCode
from tests.conftest import csrf_headers
from tests.realtime.conftest import Content, Person, open_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)

NOT_FOUND = {"type": "error", "code": ErrorCode.NOT_FOUND, "message": "No such object."}


@sync_to_async
def stored(card_id: int) -> dict[str, Any]:
    """The card as the database has it, in the shape events carry."""
    return selectors.card_payload(Card.objects.get(pk=card_id))


@sync_to_async
def all_cards() -> list[dict[str, Any]]:
    return [selectors.card_payload(card) for card in Card.objects.order_by("pk")]


async def subscribed(socket: Any, board_id: int) -> dict[str, Any]:
    await socket.send_json_to({"type": "board.subscribe", "board": board_id})
    return await receive_type(socket, "board.snapshot")


async def test_subscribing_to_an_own_board_sends_its_snapshot(
    alice_in: Person, acme: Content
) -> None:
    token = await sync_to_async(alice_in.token)()

    async with open_socket(token) as (socket, _):
        snapshot = await subscribed(socket, acme.board.pk)

    assert snapshot["board"] == {
        "id": acme.board.pk,
        "name": "Roadmap",
        "columns": [
            {"id": c.pk, "name": c.name, "position": c.position} for c in acme.columns
        ],
        "cards": [await stored(card.pk) for card in acme.cards],
    }


async def test_creating_a_card_stores_it_and_tells_subscribers(
    alice_in: Person, bob_in: Person, acme: Content
) -> None:
    done = acme.columns[2]
    alice_token = await sync_to_async(alice_in.token)()
    bob_token = await sync_to_async(bob_in.token)()
    async with (
        open_socket(alice_token) as (alice, _),
        open_socket(bob_token) as (bob, _),
    ):
        await subscribed(bob, acme.board.pk)

        await alice.send_json_to(
            {
                "type": "card.create",
                "board": acme.board.pk,
                "column": done.pk,
                "title": "Ship it",
            }
        )
        event = await receive_type(bob, "card.created")

    card = await stored((await Card.objects.aget(title="Ship it")).pk)
    assert (card["board"], card["column"], card["position"]) == (
        acme.board.pk,
        done.pk,
        0,
    )
    assert event == {"type": "card.created", "card": card}


async def test_updating_a_card_stores_it_and_tells_subscribers(
    alice_in: Person, bob_in: Person, acme: Content
) -> None:
    target = acme.cards[1]
    alice_token = await sync_to_async(alice_in.token)()
    bob_token = await sync_to_async(bob_in.token)()
    async with (
        open_socket(alice_token) as (alice, _),
        open_socket(bob_token) as (bob, _),
    ):
        await subscribed(bob, acme.board.pk)

        await alice.send_json_to(
            {"type": "card.update", "card": target.pk, "title": "Renamed"}
        )
        event = await receive_type(bob, "card.updated")

    card = await stored(target.pk)
    assert card["title"] == "Renamed"
    assert event == {"type": "card.updated", "card": card}


async def test_moving_a_card_stores_the_new_order_and_tells_subscribers(
    alice_in: Person, bob_in: Person, acme: Content
) -> None:
    first, doing = acme.cards[0], acme.columns[1]
    alice_token = await sync_to_async(alice_in.token)()
    bob_token = await sync_to_async(bob_in.token)()
    async with (
        open_socket(alice_token) as (alice, _),
        open_socket(bob_token) as (bob, _),
    ):
        await subscribed(bob, acme.board.pk)

        await alice.send_json_to(
            {"type": "card.move", "card": first.pk, "column": doing.pk, "position": 0}
        )
        event = await receive_type(bob, "card.moved")

    card = await stored(first.pk)
    assert (card["column"], card["position"]) == (doing.pk, 0)
    assert event == {"type": "card.moved", "card": card, "order": [first.pk]}
    left_behind = [c async for c in Card.objects.filter(column=acme.columns[0])]
    assert [(c.pk, c.position) for c in left_behind] == [
        (acme.cards[1].pk, 0),
        (acme.cards[2].pk, 1),
    ]


def subscribe(board: Board) -> dict[str, Any]:
    return {"type": "board.subscribe", "board": board.pk}


def create(board: Board, column: Column) -> dict[str, Any]:
    return {"type": "card.create", "board": board.pk, "column": column.pk, "title": "x"}


def update(card: Card) -> dict[str, Any]:
    return {"type": "card.update", "card": card.pk, "title": "x"}


def move(card: Card, column: Column) -> dict[str, Any]:
    return {"type": "card.move", "card": card.pk, "column": column.pk, "position": 0}


Frame = Callable[[Content, Content], dict[str, Any]]

# (id, frame carol sends, from acme's content and her own); one line per case.
FOREIGN_FRAMES: list[tuple[str, Frame]] = [
    ("subscribe-foreign-board", lambda acme, own: subscribe(acme.board)),
    ("create-on-foreign-board", lambda acme, own: create(acme.board, acme.columns[0])),
    ("create-in-foreign-column", lambda acme, own: create(own.board, acme.columns[0])),
    ("update-foreign-card", lambda acme, own: update(acme.cards[0])),
    ("move-foreign-card", lambda acme, own: move(acme.cards[0], own.columns[1])),
    ("move-into-foreign-column", lambda acme, own: move(own.cards[0], acme.columns[1])),
]


@pytest.mark.parametrize(
    "frame_of", [pytest.param(frame_of, id=name) for name, frame_of in FOREIGN_FRAMES]
)
async def test_another_tenants_ids_are_not_found_and_change_nothing(
    frame_of: Frame, carol_in: Person, acme: Content, globex: Content
) -> None:
    before = await all_cards()
    token = await sync_to_async(carol_in.token)()

    async with open_socket(token) as (socket, _):
        await socket.send_json_to(frame_of(acme, globex))
        reply = await socket.receive_json_from()

    assert reply == NOT_FOUND
    assert await all_cards() == before


def move_over_http(client: Client, card_id: int, column_id: int, position: int) -> Any:
    return client.post(
        f"/realtime/cards/{card_id}/move/",
        {"column": str(column_id), "position": str(position)},
        **csrf_headers(client),
    )


async def test_moving_a_card_over_http_tells_subscribers(
    alice_in: Person, bob_in: Person, acme: Content
) -> None:
    last, done = acme.cards[2], acme.columns[2]
    token = await sync_to_async(bob_in.token)()
    async with open_socket(token) as (bob, _):
        await subscribed(bob, acme.board.pk)

        response = await sync_to_async(move_over_http)(
            alice_in.client, last.pk, done.pk, 0
        )
        event = await receive_type(bob, "card.moved")

    assert (response.status_code, response.json()) == (HTTPStatus.OK, {"ok": True})
    card = await stored(last.pk)
    assert (card["column"], card["position"]) == (done.pk, 0)
    assert event == {"type": "card.moved", "card": card, "order": [last.pk]}


async def test_moving_another_tenants_card_over_http_is_not_found(
    carol_in: Person, acme: Content, globex: Content
) -> None:
    target = acme.cards[0]

    response = await sync_to_async(move_over_http)(
        carol_in.client, target.pk, acme.columns[1].pk, 0
    )

    assert (response.status_code, response.json()) == (
        HTTPStatus.NOT_FOUND,
        {"error": "not_found"},
    )
    card = await Card.objects.aget(pk=target.pk)
    assert (card.column_id, card.position) == (target.column_id, target.position)


async def test_moving_a_card_over_http_without_the_csrf_token_is_forbidden(
    alice_in: Person, acme: Content
) -> None:
    target = acme.cards[0]

    response = await sync_to_async(alice_in.client.post)(
        f"/realtime/cards/{target.pk}/move/",
        {"column": str(acme.columns[1].pk), "position": "0"},
    )

    assert response.status_code == HTTPStatus.FORBIDDEN
    card = await Card.objects.aget(pk=target.pk)
    assert (card.column_id, card.position) == (target.column_id, target.position)
