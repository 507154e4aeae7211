"""
Tenant isolation: every id a client can send, over the socket or over
HTTP, taken from another tenant is answered exactly like an id that does
not exist (byte for byte, so ids cannot be probed) and changes nothing;
and an id that is not a positive integer, however crafted to collide with
a group name, is a bad request that joins no group.
"""

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from accounts.models import User
from dashify.asgi import application
from realtime import fanout, groups, services
from realtime.models import Board, Card, ChatMessage, Column, Export, Notification, Room
from tests.conftest import csrf_headers, mint_token
from tests.security.conftest import allowed_origin, member, signed_in, ws_path

pytestmark = pytest.mark.django_db(transaction=True)

# Larger than any id the test database hands out.
MISSING = 987_654_321
NOT_FOUND_FRAME = {
    "type": "error",
    "code": "not_found",
    "message": "No such object.",
    "ref": "probe",
}


@dataclass
class Content:
    room: Room
    board: Board
    columns: list[Column]
    cards: list[Card]


def content_of(user: User) -> Content:
    services.ensure_demo_content(user.tenant)
    board = Board.objects.get(tenant=user.tenant, name="Roadmap")
    return Content(
        room=Room.objects.get(tenant=user.tenant, name="general"),
        board=board,
        columns=list(board.columns.order_by("position")),
        cards=list(board.cards.order_by("position")),
    )


@dataclass
class Tenants:
    """alice and bob of acme, carol of globex, and what each tenant owns."""

    alice: User
    bob: User
    carol: User
    acme: Content
    globex: Content
    carol_notification: Notification
    carol_export: Export


@pytest.fixture
def tenants() -> Tenants:
    alice, bob = member("alice", "acme"), member("bob", "acme")
    carol = member("carol", "globex")
    globex = content_of(carol)
    export = Export.objects.create(
        board=globex.board,
        requested_by=carol,
        status=Export.Status.READY,
        content="card,title\n1,Audit the reactor\n",
        completed_at=timezone.now(),
    )
    return Tenants(
        alice=alice,
        bob=bob,
        carol=carol,
        acme=content_of(alice),
        globex=globex,
        carol_notification=Notification.objects.create(user=carol, text="Secret"),
        carol_export=export,
    )


def fingerprint() -> list[object]:
    """Everything a refused request could have changed."""
    return [
        list(
            Card.objects.order_by("pk").values_list(
                "pk", "board_id", "column_id", "title", "position", "assignee_id"
            )
        ),
        list(ChatMessage.objects.order_by("pk").values_list("pk", "room_id", "body")),
        list(Notification.objects.order_by("pk").values_list("pk", "read_at")),
        list(Export.objects.order_by("pk").values_list("pk", "status")),
    ]


@asynccontextmanager
async def socket_of(user: User) -> AsyncIterator[WebsocketCommunicator]:
    """An accepted dashboard socket of ``user``, hello already read."""
    token = await sync_to_async(lambda: mint_token(signed_in(user)))()
    socket = WebsocketCommunicator(
        application, ws_path(token), headers=[(b"origin", allowed_origin().encode())]
    )
    try:
        connected, _ = await socket.connect(timeout=5)
        assert connected
        assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
        yield socket
    finally:
        await socket.disconnect()


async def answer(socket: WebsocketCommunicator, frame: dict[str, Any]) -> str:
    await socket.send_to(text_data=json.dumps({**frame, "ref": "probe"}))
    text = await socket.receive_from(timeout=5)
    assert isinstance(text, str)
    return text


# (id, frame naming another tenant's object, the same frame naming a missing one)
Frames = Callable[[Tenants], tuple[dict[str, Any], dict[str, Any]]]

# fmt: off
FOREIGN_FRAMES: list[tuple[str, Frames]] = [
    ("chat.join-room", lambda t: (
        {"type": "chat.join", "room": t.globex.room.pk},
        {"type": "chat.join", "room": MISSING})),
    ("chat.send-room", lambda t: (
        {"type": "chat.send", "room": t.globex.room.pk, "body": "hi"},
        {"type": "chat.send", "room": MISSING, "body": "hi"})),
    ("board.subscribe-board", lambda t: (
        {"type": "board.subscribe", "board": t.globex.board.pk},
        {"type": "board.subscribe", "board": MISSING})),
    ("card.create-board", lambda t: (
        {"type": "card.create", "board": t.globex.board.pk,
         "column": t.globex.columns[0].pk, "title": "x"},
        {"type": "card.create", "board": MISSING, "column": MISSING, "title": "x"})),
    ("card.create-column-on-own-board", lambda t: (
        {"type": "card.create", "board": t.acme.board.pk,
         "column": t.globex.columns[0].pk, "title": "x"},
        {"type": "card.create", "board": t.acme.board.pk, "column": MISSING,
         "title": "x"})),
    ("card.update-card", lambda t: (
        {"type": "card.update", "card": t.globex.cards[0].pk, "title": "x"},
        {"type": "card.update", "card": MISSING, "title": "x"})),
    ("card.update-assignee", lambda t: (
        {"type": "card.update", "card": t.acme.cards[0].pk, "assignee": t.carol.pk},
        {"type": "card.update", "card": t.acme.cards[0].pk, "assignee": MISSING})),
    ("card.move-card", lambda t: (
        {"type": "card.move", "card": t.globex.cards[0].pk,
         "column": t.globex.columns[1].pk, "position": 0},
        {"type": "card.move", "card": MISSING, "column": MISSING, "position": 0})),
    ("card.move-into-column", lambda t: (
        {"type": "card.move", "card": t.acme.cards[0].pk,
         "column": t.globex.columns[1].pk, "position": 0},
        {"type": "card.move", "card": t.acme.cards[0].pk, "column": MISSING,
         "position": 0})),
    ("notification.read-id", lambda t: (
        {"type": "notification.read", "id": t.carol_notification.pk},
        {"type": "notification.read", "id": MISSING})),
]
# fmt: on


@pytest.mark.parametrize(
    "frames_of", [pytest.param(f, id=case) for case, f in FOREIGN_FRAMES]
)
async def test_another_tenants_id_is_answered_exactly_like_a_missing_one(
    tenants: Tenants, frames_of: Frames
) -> None:
    foreign, missing = frames_of(tenants)
    before = await sync_to_async(fingerprint)()

    async with socket_of(tenants.alice) as socket:
        to_foreign = await answer(socket, foreign)
        to_missing = await answer(socket, missing)

    assert to_foreign == to_missing
    assert json.loads(to_foreign) == NOT_FOUND_FRAME
    assert await sync_to_async(fingerprint)() == before


async def test_the_group_probe_reaches_a_socket_that_joined(tenants: Tenants) -> None:
    room = tenants.acme.room.pk
    async with socket_of(tenants.alice) as socket:
        history = json.loads(await answer(socket, {"type": "chat.join", "room": room}))
        assert history["type"] == "chat.history"

        await fanout.apublish(
            groups.room_group(tenants.alice.tenant_id, room),
            {"type": "chat.message", "probe": "control"},
        )

        assert await socket.receive_json_from(timeout=5) == {
            "type": "chat.message",
            "probe": "control",
        }


async def test_a_refused_join_of_another_tenants_room_hears_nothing_from_it(
    tenants: Tenants,
) -> None:
    async with socket_of(tenants.alice) as socket:
        await answer(socket, {"type": "chat.join", "room": tenants.globex.room.pk})
        await answer(
            socket, {"type": "board.subscribe", "board": tenants.globex.board.pk}
        )

        await sync_to_async(services.post_message)(
            tenant_id=tenants.carol.tenant_id,
            user_id=tenants.carol.pk,
            room_id=tenants.globex.room.pk,
            body="for globex only",
        )
        await sync_to_async(services.update_card)(
            tenant_id=tenants.carol.tenant_id,
            card_id=tenants.globex.cards[0].pk,
            changes={"title": "renamed in globex"},
        )

        assert await socket.receive_nothing(timeout=0.5)


# --- HTTP ----------------------------------------------------------------------------

Request = Callable[[Client, Tenants, bool], Any]


def move_card(client: Client, t: Tenants, foreign: bool) -> Any:
    card = t.globex.cards[0].pk if foreign else MISSING
    return client.post(
        f"/realtime/cards/{card}/move/",
        {"column": t.globex.columns[1].pk, "position": 0},
        **csrf_headers(client),
    )


def move_own_card_into_column(client: Client, t: Tenants, foreign: bool) -> Any:
    column = t.globex.columns[1].pk if foreign else MISSING
    return client.post(
        f"/realtime/cards/{t.acme.cards[0].pk}/move/",
        {"column": column, "position": 0},
        **csrf_headers(client),
    )


def download_export(client: Client, t: Tenants, foreign: bool) -> Any:
    export = t.carol_export.pk if foreign else MISSING
    return client.get(f"/realtime/exports/{export}/download/")


def request_export(client: Client, t: Tenants, foreign: bool) -> Any:
    board = t.globex.board.pk if foreign else MISSING
    return client.post(f"/realtime/boards/{board}/export/", **csrf_headers(client))


HTTP_REQUESTS: list[tuple[str, Request]] = [
    ("move-card", move_card),
    ("move-own-card-into-column", move_own_card_into_column),
    ("download-export", download_export),
    ("request-export", request_export),
]


# Headers that carry the clock, which two requests may read a second apart.
CLOCK_HEADERS = {"date", "expires"}


def visible(response: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    """All a client learns from a response, but for the time of day."""
    headers = [(k, v) for k, v in response.items() if k.lower() not in CLOCK_HEADERS]
    return response.status_code, response.content, sorted(headers)


@pytest.mark.parametrize(
    "send", [pytest.param(send, id=case) for case, send in HTTP_REQUESTS]
)
def test_another_tenants_id_over_http_is_answered_exactly_like_a_missing_one(
    tenants: Tenants, send: Request
) -> None:
    client = signed_in(tenants.alice)
    before = fingerprint()

    to_foreign = visible(send(client, tenants, True))
    to_missing = visible(send(client, tenants, False))

    assert to_foreign == to_missing
    assert to_foreign[0] == 404
    assert fingerprint() == before


# --- ids crafted to collide in group names -----------------------------------------

# (id, value sent as the room or board id, given the own and the foreign id)
Crafted = Callable[[int, int, int], object]

CRAFTED_IDS: list[tuple[str, Crafted]] = [
    ("numeric-string", lambda own, foreign, tenant: str(own)),
    ("dotted-group-suffix", lambda own, foreign, tenant: f"{own}.room.{foreign}"),
    (
        "whole-group-name",
        lambda own, foreign, tenant: f"tenant.{tenant}.room.{foreign}",
    ),
    ("float", lambda own, foreign, tenant: float(own)),
    ("float-with-fraction", lambda own, foreign, tenant: own + 0.5),
    ("true", lambda own, foreign, tenant: True),
    ("false", lambda own, foreign, tenant: False),
    ("zero", lambda own, foreign, tenant: 0),
    ("negative", lambda own, foreign, tenant: -own),
    ("beyond-64-bits", lambda own, foreign, tenant: 2**63),
    ("null", lambda own, foreign, tenant: None),
    ("list", lambda own, foreign, tenant: [own]),
    ("object", lambda own, foreign, tenant: {"id": own}),
    ("empty-string", lambda own, foreign, tenant: ""),
]

JOINS = {
    "chat.join": ("room", groups.room_group),
    "board.subscribe": ("board", groups.board_group),
}


def own_and_foreign(t: Tenants, field: str) -> tuple[int, int]:
    if field == "room":
        return t.acme.room.pk, t.globex.room.pk
    return t.acme.board.pk, t.globex.board.pk


@pytest.mark.parametrize(
    ("frame_type", "crafted"),
    [
        pytest.param(frame_type, crafted, id=f"{frame_type}-{case}")
        for frame_type in JOINS
        for case, crafted in CRAFTED_IDS
    ],
)
async def test_an_id_crafted_to_collide_in_a_group_name_is_a_bad_request(
    tenants: Tenants, frame_type: str, crafted: Crafted
) -> None:
    field, group_of = JOINS[frame_type]
    own, foreign = own_and_foreign(tenants, field)
    value = crafted(own, foreign, tenants.carol.tenant_id)

    async with socket_of(tenants.alice) as socket:
        reply = await answer(socket, {"type": frame_type, field: value})

        # Whatever group a lax join could have named must not reach the socket.
        for group in {
            group_of(tenants.alice.tenant_id, own),
            group_of(tenants.carol.tenant_id, foreign),
            f"tenant.{tenants.alice.tenant_id}.{field}.{value}",
        }:
            await fanout.apublish(group, {"type": "chat.message", "probe": group})
        assert await socket.receive_nothing(timeout=0.5)

    assert json.loads(reply) == {
        "type": "error",
        "code": "bad_request",
        "message": f"{field} must be a positive integer id.",
        "ref": "probe",
    }
