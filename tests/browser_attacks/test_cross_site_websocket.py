"""
Cross-site WebSocket hijacking against a live daphne process: a page on
another origin that gets hold of a valid token (or rides a browser that
would mint one) must not open the dashboard socket. The handshakes here are
written by hand, so that the Origin header can be missing, repeated or
malformed exactly as the table says, and go through daphne's own header
parsing rather than a test communicator's.

tests/realtime/test_handshake.py checks the origin rule on the ASGI
application; this module checks what reaches it through the real server.
"""

from collections.abc import Callable
from http import HTTPStatus

import pytest

from tests.conftest import LiveServer, LiveSite
from tests.faults.support import Browser, raw_handshake, sign_in

pytestmark = pytest.mark.slow

SWITCHING_PROTOCOLS = HTTPStatus.SWITCHING_PROTOCOLS
FORBIDDEN = HTTPStatus.FORBIDDEN
BAD_REQUEST = HTTPStatus.BAD_REQUEST

# (case id, the Origin headers sent given the allowed origin's port, the
# refusal). A browser sends exactly one Origin, lower-case and without a
# path, so every other shape comes from a script and is refused: 403 by
# Dashify's check, or 400 by daphne's WebSocket layer (autobahn) before the
# request reaches Dashify, when it cannot parse the Origin as a URL with a
# host. Daphne joins repeated headers with a comma, which is why two
# Origin headers end up as one unparsable or one foreign value.
REFUSED_ORIGINS: list[tuple[str, Callable[[int], list[str]], int]] = [
    ("foreign", lambda port: ["https://evil.example"], FORBIDDEN),
    ("foreign-upper-case", lambda port: ["HTTPS://EVIL.EXAMPLE"], FORBIDDEN),
    ("null", lambda port: ["null"], FORBIDDEN),
    ("empty", lambda port: [""], BAD_REQUEST),
    ("none", lambda port: [], FORBIDDEN),
    (
        "look-alike-suffix",
        lambda port: [f"http://127.0.0.1.evil.example:{port}"],
        FORBIDDEN,
    ),
    ("look-alike-letter", lambda port: [f"http://127.0.0.l:{port}"], FORBIDDEN),
    ("look-alike-prefix", lambda port: [f"http://evil.127.0.0.1:{port}"], FORBIDDEN),
    ("other-port", lambda port: [f"http://127.0.0.1:{port + 1}"], FORBIDDEN),
    ("no-port", lambda port: ["http://127.0.0.1"], FORBIDDEN),
    ("other-scheme", lambda port: [f"https://127.0.0.1:{port}"], FORBIDDEN),
    ("websocket-scheme", lambda port: [f"ws://127.0.0.1:{port}"], FORBIDDEN),
    ("trailing-slash", lambda port: [f"http://127.0.0.1:{port}/"], FORBIDDEN),
    ("with-path", lambda port: [f"http://127.0.0.1:{port}/ws/"], FORBIDDEN),
    ("with-userinfo", lambda port: [f"http://alice@127.0.0.1:{port}"], FORBIDDEN),
    (
        "userinfo-trick",
        lambda port: [f"http://127.0.0.1:{port}@evil.example"],
        FORBIDDEN,
    ),
    ("twice", lambda port: [f"http://127.0.0.1:{port}"] * 2, BAD_REQUEST),
    (
        "allowed-then-foreign",
        lambda port: [f"http://127.0.0.1:{port}", "https://evil.example"],
        BAD_REQUEST,
    ),
    (
        "foreign-then-allowed",
        lambda port: ["https://evil.example", f"http://127.0.0.1:{port}"],
        FORBIDDEN,
    ),
    (
        "comma-list",
        lambda port: [f"http://127.0.0.1:{port}, https://evil.example"],
        BAD_REQUEST,
    ),
]


@pytest.fixture(scope="module")
def alice(attack_server: LiveServer) -> Browser:
    return sign_in(attack_server, "alice")


def _handshake(server: LiveServer, token: str, origins: list[str]) -> int:
    return raw_handshake(
        server.port, f"/ws/?token={token}", [("Origin", o) for o in origins]
    )


@pytest.mark.parametrize(
    ("origins_for", "refusal"),
    [pytest.param(o, refusal, id=case) for case, o, refusal in REFUSED_ORIGINS],
)
def test_a_handshake_from_anything_but_the_allowed_origin_is_refused(
    origins_for: Callable[[int], list[str]],
    refusal: int,
    attack_server: LiveServer,
    alice: Browser,
) -> None:
    status = _handshake(attack_server, alice.token(), origins_for(attack_server.port))

    assert status == refusal


def test_refused_origins_leave_the_token_unspent_for_the_allowed_one(
    attack_site: LiveSite, attack_server: LiveServer, alice: Browser
) -> None:
    # The origin is checked before the token is even parsed, so a hostile
    # page cannot burn a person's token (nor learn whether it was valid).
    token = alice.token()
    refusals = {
        case: _handshake(attack_server, token, origins_for(attack_server.port))
        for case, origins_for, _ in REFUSED_ORIGINS
    }

    assert refusals == {case: refusal for case, _, refusal in REFUSED_ORIGINS}
    assert _handshake(attack_server, token, [attack_site.origin]) == SWITCHING_PROTOCOLS


def test_the_allowed_origin_is_matched_without_regard_to_case(
    attack_site: LiveSite, attack_server: LiveServer, alice: Browser
) -> None:
    # Scheme and host are case-insensitive (RFC 6454, section 4), so this
    # is the same origin; browsers always send it in lower case, and no
    # page on another origin can make them send this one.
    status = _handshake(attack_server, alice.token(), [attack_site.origin.upper()])

    assert status == SWITCHING_PROTOCOLS
