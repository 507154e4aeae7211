"""
No log record carries a WebSocket token, at any level, through minting,
an accepted handshake and refused ones.
"""

import logging

import pytest
from asgiref.sync import sync_to_async

from tests.realtime.conftest import (
    SECURITY_LOGGER,
    Person,
    b64url,
    b64url_decode,
    handshake_accepted,
    open_socket,
    ws_path,
)

pytestmark = pytest.mark.django_db(transaction=True)


def with_flipped_signature(token: str) -> str:
    head, signature = token.rsplit(".", 1)
    raw = bytearray(b64url_decode(signature))
    raw[-1] ^= 0x80
    return f"{head}.{b64url(bytes(raw))}"


async def refused(token: str) -> bool:
    connected = await handshake_accepted(ws_path(token))
    return connected is False


async def test_no_log_record_contains_the_token_or_a_segment_of_it(
    alice_in: Person, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    token = await sync_to_async(alice_in.token)()
    forged = with_flipped_signature(token)
    async with open_socket(token):
        pass
    assert await refused(forged)
    assert await refused(token)

    security = [r.getMessage() for r in caplog.records if r.name == SECURITY_LOGGER]
    assert [line.split(" user=")[0] for line in security] == [
        "ws token issued",
        "ws handshake accepted",
        "ws handshake refused reason=bad-signature",
        "ws handshake refused reason=replayed-or-revoked",
    ]
    secrets = [token, forged, *token.split("."), forged.rsplit(".", 1)[1]]
    leaks = [
        (record.name, record.getMessage())
        for record in caplog.records
        if any(secret in record.getMessage() for secret in secrets)
    ]
    assert leaks == []
