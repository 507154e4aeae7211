"""
Frames the protocol cannot use: a malformed request earns an error frame
and the socket stays open; oversize, binary and flooding clients are
disconnected with a close code saying why.
"""

import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from realtime.protocol import CloseCode, ErrorCode
from tests.realtime.conftest import Person, open_socket, receive_until_close

pytestmark = pytest.mark.django_db(transaction=True)

MAX_FRAME = settings.DASHIFY_WS_MAX_FRAME_BYTES


def padded_ping(size: int, filler: str = "x") -> str:
    """A ping frame of exactly ``size`` bytes in UTF-8."""
    frame = json.dumps({"type": "ping", "pad": ""}, separators=(",", ":"))
    room = size - len(frame.encode())
    assert room % len(filler.encode()) == 0
    return frame.replace(
        '"pad":""', f'"pad":"{filler * (room // len(filler.encode()))}"'
    )


NOT_JSON = (ErrorCode.BAD_JSON, "Frames must be JSON objects.")
NO_TYPE = (ErrorCode.BAD_REQUEST, 'Frames must be objects with a "type".')
UNKNOWN = (ErrorCode.UNKNOWN_TYPE, "Unknown type; see docs/protocol.md.")

# (id, frame text, expected error code and message); one line per case.
BAD_FRAMES = [
    ("not-json", "{type: ping}", NOT_JSON),
    ("truncated-object", '{"type": "ping"', NOT_JSON),
    ("array", "[1, 2]", NO_TYPE),
    ("string", '"ping"', NO_TYPE),
    ("no-type", "{}", NO_TYPE),
    ("numeric-type", '{"type": 1}', NO_TYPE),
    ("unknown-type", '{"type": "shell.exec"}', UNKNOWN),
    ("handler-name-as-type", '{"type": "on_ping"}', UNKNOWN),
    ("event-type-from-client", '{"type": "session.ended"}', UNKNOWN),
]


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [pytest.param(text, *error, id=name) for name, text, error in BAD_FRAMES],
)
async def test_a_bad_frame_earns_an_error_and_the_socket_stays_open(
    text: str, code: ErrorCode, message: str, alice_in: Person
) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        await socket.send_to(text_data=text)
        error = await socket.receive_json_from()
        await socket.send_json_to({"type": "ping"})
        after = await socket.receive_json_from()

    assert error == {"type": "error", "code": code, "message": message}
    assert after == {"type": "pong"}


async def test_a_frame_of_the_maximum_size_is_served(alice_in: Person) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        await socket.send_to(text_data=padded_ping(MAX_FRAME))

        assert await socket.receive_json_from() == {"type": "pong"}


@pytest.mark.parametrize("filler", ["x", "é"], ids=["ascii", "two-byte-characters"])
async def test_a_frame_over_the_maximum_size_closes_the_socket(
    filler: str, alice_in: Person
) -> None:
    token = await sync_to_async(alice_in.token)()
    # The limit counts bytes: with "é" the frame has fewer characters.
    text = padded_ping(MAX_FRAME + len(filler.encode()), filler)
    async with open_socket(token) as (socket, _):
        await socket.send_to(text_data=text)

        frames, code = await receive_until_close(socket)

    assert (frames, code) == ([], CloseCode.MESSAGE_TOO_BIG)


async def test_a_binary_frame_closes_the_socket(alice_in: Person) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        await socket.send_to(bytes_data=b'{"type": "ping"}')

        frames, code = await receive_until_close(socket)

    assert (frames, code) == ([], CloseCode.UNSUPPORTED_DATA)


async def test_flooding_beyond_the_burst_closes_the_socket(alice_in: Person) -> None:
    burst = settings.DASHIFY_WS_BURST
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        # Twice the burst leaves no doubt even if the bucket refills a
        # little while the first frames are being answered.
        for _ in range(2 * burst):
            await socket.send_json_to({"type": "ping"})

        frames, code = await receive_until_close(socket, within=5.0)

    assert code == CloseCode.RATE_LIMITED
    assert frames == [{"type": "pong"}] * len(frames)
    assert burst <= len(frames) < 2 * burst
