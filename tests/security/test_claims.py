"""
Claims and time (RFC 8725 sections 3.8-3.10; the OWASP JWT cheat sheet):
every required claim is present with its exact JSON type and range, the
times hold to the leeway and the lifetime cap of the token's kind, and no
claim Dashify does not write grants anything, even signed with the right
secret and spent with a genuine marker.
"""

import json
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.db.models import Max

from accounts import tokens
from dashify.asgi import application
from internal import scopes
from realtime import services
from realtime.models import Board, Notification, Room
from tests.security.conftest import (
    ACCEPTED,
    DROP,
    INVALID_TOKEN_CHALLENGE,
    LEEWAY,
    SCOPE_CHALLENGE,
    ApiSurface,
    Case,
    Expect,
    Handshake,
    Mutation,
    Surface,
    WebSocketSurface,
    allowed_origin,
    notification_body,
    now_plus,
    on_both,
    on_each,
    post_notification,
    refused,
    security_lines,
    ws_path,
)

pytestmark = pytest.mark.django_db(transaction=True)

BAD_CLAIMS = refused("bad-claims")
WRONG_AUD = refused("wrong-audience")
EXPIRED = refused("expired")
NOT_YET_VALID = refused("not-yet-valid")
IN_FUTURE = refused("issued-in-future")
TOO_LONG = refused("lifetime-too-long")

Value = Callable[[Surface], object]


def base_value(name: str, convert: Callable[[Any], object]) -> Value:
    """The claim's genuine value, converted (its type changed, say)."""
    return lambda surface: convert(surface.claims[name])


# A value of each wrong JSON type for each shape of claim in TokenKind.
WRONG_TYPES: dict[str, list[tuple[str, Callable[[Any], object]]]] = {
    "int": [
        ("string", str),
        ("float", float),
        ("bool", lambda v: True),
        ("null", lambda v: None),
        ("list", lambda v: [v]),
    ],
    "id": [
        ("int", int),
        ("float", float),
        ("bool", lambda v: True),
        ("null", lambda v: None),
        ("list", lambda v: [v]),
    ],
    "hex": [
        ("int", lambda v: int(v, 16)),
        ("float", lambda v: 1.5),
        ("bool", lambda v: True),
        ("null", lambda v: None),
        ("list", lambda v: [v]),
    ],
    "str": [
        ("int", lambda v: 1),
        ("float", lambda v: 1.5),
        ("bool", lambda v: True),
        ("null", lambda v: None),
        ("list", lambda v: [v]),
        ("object", lambda v: {"value": v}),
    ],
}

# Values of the right JSON type but outside what the shape allows.
OUT_OF_RANGE: dict[str, list[tuple[str, object]]] = {
    "int": [
        ("negative", -1),
        ("2-to-the-53", 2**53),
        ("2-to-the-63", 2**63),
        ("minus-2-to-the-63", -(2**63)),
    ],
    "id": [
        ("zero", "0"),
        ("negative", "-1"),
        ("leading-zero", "01"),
        ("plus-sign", "+1"),
        ("leading-space", " 1"),
        ("decimal-point", "1.0"),
        ("exponent", "1e3"),
        ("hexadecimal", "0x1"),
        ("twenty-digits", "1" * 20),
    ],
    "hex": [
        ("empty", ""),
        ("thirty-digits", "ab" * 15),
        ("thirty-four-digits", "ab" * 17),
        ("upper-case", "AB" * 16),
        ("not-hex", "zz" * 16),
        ("hex-prefix", "0x" + "ab" * 15),
    ],
    "str": [
        ("empty", ""),
        ("two-hundred-and-one-characters", "x" * 201),
    ],
}


def claim_cases(kind: tokens.TokenKind) -> list[Case]:
    """Missing, mistyped and out-of-range cases for each claim of ``kind``."""
    cases: list[Case] = [
        (f"missing-{name}", Mutation(claims={name: DROP}), BAD_CLAIMS)
        for name in kind.claims
    ]
    cases += [
        (
            f"{name}-as-{type_name}",
            Mutation(claims={name: base_value(name, convert)}),
            BAD_CLAIMS,
        )
        for name, shape in kind.claims.items()
        for type_name, convert in WRONG_TYPES[shape]
    ]
    cases += [
        (f"{name}-{range_name}", Mutation(claims={name: value}), BAD_CLAIMS)
        for name, shape in kind.claims.items()
        for range_name, value in OUT_OF_RANGE[shape]
    ]
    return cases


def times(iat: int, nbf: int, exp: int) -> Mutation:
    """Times this many seconds from the moment of forging."""
    return Mutation(
        claims={"iat": now_plus(iat), "nbf": now_plus(nbf), "exp": now_plus(exp)}
    )


def expiring(at: int) -> Mutation:
    """exp ``at`` seconds from now, after a 30-second life."""
    return times(iat=at - 30, nbf=at - 30, exp=at)


def starting(at: int) -> Mutation:
    """iat = nbf ``at`` seconds from now, for a 30-second life."""
    return times(iat=at, nbf=at, exp=at + 30)


def audience(value: object) -> Mutation:
    return Mutation(claims={"aud": value})


def lifetime(extra: int, iat: int = 0) -> Mutation:
    """iat = nbf = now + ``iat``; exp that far past iat plus the kind's cap."""
    return Mutation(
        claims={
            "iat": now_plus(iat),
            "nbf": now_plus(iat),
            "exp": lambda s: s.now + iat + s.max_lifetime + extra,
        }
    )


# Short names keep each time case on one line.
W = LEEWAY
M = 3  # seconds of margin on either side of a boundary

# fmt: off
AUDIENCE_CASES: list[Case] = [
    ("missing-aud", audience(DROP), WRONG_AUD),
    ("aud-as-list", audience(lambda s: [s.kind.audience]), WRONG_AUD),
    ("aud-as-null", audience(None), WRONG_AUD),
    ("aud-as-int", audience(1), WRONG_AUD),
    ("aud-as-object", audience({"aud": "dashify"}), WRONG_AUD),
    ("aud-of-the-other-kind", audience(lambda s: s.other_kind.audience), WRONG_AUD),
    ("aud-empty", audience(""), WRONG_AUD),
]

# Three whole seconds of margin leave at least two of real time between
# forging and checking, however the clock ticks; "at" cases hold as it moves.
TIME_CASES: list[Case] = [
    ("exp-at-the-leeway", expiring(-W), EXPIRED),
    ("exp-just-inside-the-leeway", expiring(-W + M), ACCEPTED),
    ("exp-just-outside-the-leeway", expiring(-W - M), EXPIRED),
    ("exp-an-hour-ago", expiring(-3600), EXPIRED),
    ("nbf-at-the-leeway", starting(W), ACCEPTED),
    ("nbf-just-inside-the-leeway", starting(W - M), ACCEPTED),
    ("nbf-just-outside-the-leeway", times(iat=0, nbf=W + M, exp=30), NOT_YET_VALID),
    ("nbf-tomorrow", times(iat=0, nbf=86_400, exp=30), NOT_YET_VALID),
    # nbf may not precede iat, so iat at or inside the leeway brings nbf along.
    ("iat-at-the-leeway", starting(W), ACCEPTED),
    ("iat-just-inside-the-leeway", starting(W - M), ACCEPTED),
    ("iat-just-outside-the-leeway", times(iat=W + M, nbf=0, exp=30), IN_FUTURE),
    ("iat-tomorrow", times(iat=86_400, nbf=0, exp=30), IN_FUTURE),
    ("lifetime-exactly-the-maximum", lifetime(0), ACCEPTED),
    ("lifetime-one-second-over-the-maximum", lifetime(1), TOO_LONG),
    ("lifetime-a-day", Mutation(claims={"exp": now_plus(86_400)}), TOO_LONG),
    ("lifetime-stretched-by-an-old-iat", lifetime(1, iat=-60), TOO_LONG),
    ("nbf-before-iat", times(iat=0, nbf=-1, exp=30), TOO_LONG),
]
# fmt: on

CLAIM_CASES = {
    "ws": claim_cases(tokens.WS_TOKEN),
    "api": claim_cases(tokens.SERVICE_TOKEN),
}


@pytest.mark.parametrize(
    ("surface", "mutation", "expect"),
    on_each(CLAIM_CASES) + on_both(AUDIENCE_CASES),
    indirect=["surface"],
)
def test_every_claim_must_be_present_with_its_exact_type_and_range(
    surface: Surface, mutation: Mutation, expect: Expect
) -> None:
    surface.attack(mutation, expect)


@pytest.mark.parametrize(
    ("surface", "mutation", "expect"), on_both(TIME_CASES), indirect=["surface"]
)
def test_times_hold_to_the_leeway_and_the_lifetime_cap(
    surface: Surface, mutation: Mutation, expect: Expect
) -> None:
    surface.attack(mutation, expect)


# --- privilege claims -----------------------------------------------------------------
# Claims added to, or changed in, a genuine token re-signed with the right
# secret and spent with its genuine marker. Refusing the token and admitting
# it with nothing more than it had are both fine; anything else is not.

PRIVILEGE_CASES: list[tuple[str, dict[str, object]]] = [
    ("is-staff", {"is_staff": True}),
    ("is-superuser", {"is_superuser": True}),
    ("role-admin", {"role": "admin"}),
    ("groups-admin", {"groups": ["admin"]}),
    ("every-tenant", {"tenants": "*", "tenant": "*"}),
    ("tid-of-another-tenant", {"tid": lambda s: s.carol.tenant_id}),
    ("sub-of-another-tenants-user", {"sub": lambda s: str(s.carol.pk)}),
    (
        "sub-and-tid-of-another-tenant",
        {"sub": lambda s: str(s.carol.pk), "tid": lambda s: s.carol.tenant_id},
    ),
    ("scope-of-another-tenant", {"scope": lambda s: carol_scope(s)}),
]


def carol_scope(surface: Surface) -> str:
    return scopes.notification_create(
        tenant_id=surface.carol.tenant_id, user_id=surface.carol.pk
    )


def missing_id(model: type[Room] | type[Board]) -> int:
    return (model.objects.aggregate(top=Max("pk"))["top"] or 0) + 1000


async def aprobe(
    token: str, frames: list[dict[str, object]]
) -> tuple[Handshake, list[str]]:
    """Open a socket with ``token`` and return the raw answer to each frame."""
    socket = WebsocketCommunicator(
        application, ws_path(token), headers=[(b"origin", allowed_origin().encode())]
    )
    answers: list[str] = []
    try:
        connected, code = await socket.connect(timeout=5)
        hello = await socket.receive_json_from(timeout=5) if connected else None
        for frame in frames if connected else []:
            await socket.send_to(text_data=json.dumps(frame))
            text = await socket.receive_from(timeout=5)
            assert isinstance(text, str)
            answers.append(text)
    finally:
        await socket.disconnect()
    return Handshake(connected, code, hello), answers


probe = async_to_sync(aprobe)


def join_and_subscribe(room: int, board: int) -> list[dict[str, object]]:
    return [
        {"type": "chat.join", "room": room, "ref": "probe"},
        {"type": "board.subscribe", "board": board, "ref": "probe"},
    ]


def privilege_params(surface: str) -> list[Any]:
    return [
        pytest.param(surface, claims, id=f"{surface}:{case}")
        for case, claims in PRIVILEGE_CASES
    ]


@pytest.mark.parametrize(
    ("surface", "claims"), privilege_params("ws"), indirect=["surface"]
)
def test_a_privilege_claim_opens_no_other_tenants_room_or_board(
    surface: WebSocketSurface, claims: dict[str, object]
) -> None:
    services.ensure_demo_content(surface.carol.tenant)
    globex_room = Room.objects.get(tenant=surface.carol.tenant)
    globex_board = Board.objects.get(tenant=surface.carol.tenant)
    frames = join_and_subscribe(globex_room.pk, globex_board.pk)
    frames += join_and_subscribe(missing_id(Room), missing_id(Board))
    token = surface.forge(Mutation(claims=claims))
    surface.caplog.clear()

    handshake, answers = probe(token, frames)

    accepted = security_lines(surface.caplog, "ws handshake accepted")
    if not handshake.connected:
        assert handshake.code == 1008
        assert accepted == []
        return
    assert handshake.hello is not None
    assert (handshake.hello["user"], handshake.hello["tenant"]) == surface.alice_ids
    assert accepted == [
        "ws handshake accepted user={} tenant={}".format(*surface.alice_ids)
    ]
    # Another tenant's room and board answer exactly as missing ones do.
    assert answers[:2] == answers[2:]
    assert json.loads(answers[0]) == {
        "type": "error",
        "code": "not_found",
        "message": "No such object.",
        "ref": "probe",
    }


@pytest.mark.parametrize(
    ("surface", "claims"), privilege_params("api"), indirect=["surface"]
)
def test_a_privilege_claim_buys_no_call_outside_the_genuine_scope(
    surface: ApiSurface, claims: dict[str, object]
) -> None:
    token = surface.forge(Mutation(claims=claims))

    response = post_notification(notification_body(surface.carol), f"Bearer {token}")

    refusal = (response.status_code, response.get("WWW-Authenticate"), response.json())
    assert refusal in [
        (403, SCOPE_CHALLENGE, {"error": "insufficient_scope"}),
        (401, INVALID_TOKEN_CHALLENGE, {"error": "invalid_token"}),
    ]
    assert Notification.objects.count() == 0
