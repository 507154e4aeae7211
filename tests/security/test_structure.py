"""
Structure and encoding attacks: anything but the one compact form Dashify
writes (three base64url segments without padding, JSON objects inside, no
repeated member, no NaN) is refused, whatever else is right about it; and
each surface takes the token from exactly one place (the ``token`` query
parameter of the socket, the ``Authorization: Bearer`` header of the API).
"""

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from django.test import Client

from accounts import tokens
from tests.security.conftest import (
    ACCEPT,
    ACCEPTED,
    NOTIFICATIONS,
    Case,
    ClientResponse,
    Expect,
    Mutation,
    Surface,
    WebSocketSurface,
    b64url,
    handshake,
    notification_body,
    on_both,
    on_each,
    refused,
    to_json,
)

pytestmark = pytest.mark.django_db(transaction=True)

MALFORMED = refused("malformed")
BAD_CLAIMS = refused("bad-claims")
WRONG_AUDIENCE = refused("wrong-audience")
# The socket's query string is capped before it is parsed, so an oversized
# token never reaches the verifier there.
OVERSIZED = refused(ws="no-token", api="malformed")
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def literal(token: str) -> Mutation:
    return Mutation(token=lambda surface: token)


def edit(change: Callable[[str], str]) -> Mutation:
    return Mutation(edit=change)


def header_json(raw: bytes) -> Mutation:
    """Exactly these header bytes, signed under the right secret."""
    return Mutation(header_json=lambda header: raw)


def payload_json(raw: Callable[[dict[str, object]], bytes] | bytes) -> Mutation:
    """Exactly these payload bytes, signed under the right secret."""
    return Mutation(payload_json=raw if callable(raw) else lambda claims: raw)


def repeated(name: str, value: object) -> Mutation:
    """The claims with ``name`` written a second time, last, as ``value``."""
    return payload_json(
        lambda claims: (
            to_json(claims)[:-1] + b',"%s":%s}' % (name.encode(), to_json(value))
        )
    )


def at_segment(index: int, change: Callable[[str], str]) -> Callable[[str], str]:
    def apply(token: str) -> str:
        parts = token.split(".")
        parts[index] = change(parts[index])
        return ".".join(parts)

    return apply


def padded(segment: str) -> str:
    return segment + "=" * (-len(segment) % 4)


def standard_b64(data: bytes) -> str:
    return base64.b64encode(data).rstrip(b"=").decode()


def other_padding_bits(segment: str) -> str:
    """The same bytes with a different last character (non-canonical base64)."""
    if len(segment) % 4 not in (2, 3):
        return segment  # no padding bits: until() tries another filler
    last = ALPHABET[ALPHABET.index(segment[-1]) ^ 0b01]
    return segment[:-1] + last


def until(accept: Callable[[str], bool], base: Mutation) -> Mutation:
    """
    ``base`` with a filler claim (ignored by Dashify) grown until the token
    shows the property ``accept`` checks, so that no case passes vacuously.
    """

    def build(surface: Surface) -> str:
        for size in range(64):
            filled = replace(base, claims={**base.claims, "filler": "x" * size})
            token = surface.forge(filled)
            if accept(token):
                return token
        raise AssertionError("no filler gives the token the property")

    return Mutation(token=build)


def of_length(length: int) -> Mutation:
    """A right token of exactly ``length`` characters, by filler and kid length."""

    def build(surface: Surface) -> str:
        # A segment grows by 4 characters per 3 bytes and is never 1 mod 4
        # long; a longer kid shifts the header when the payload cannot fit.
        for kid_extra in range(3):
            header = {"kid": surface.kid + "x" * kid_extra}
            empty = surface.forge(Mutation(header=header, claims={"filler": ""}))
            estimate = (length - len(empty)) * 3 // 4
            for size in range(max(0, estimate - 3), estimate + 4):
                token = surface.forge(
                    Mutation(header=header, claims={"filler": "x" * size})
                )
                if len(token) == length:
                    return token
        raise AssertionError(f"no token of exactly {length} characters")

    return Mutation(token=build)


def filler(size: int) -> Mutation:
    return Mutation(claims={"filler": "x" * size})


BOM = b"\xef\xbb\xbf"


def utf_16(value: dict[str, object]) -> bytes:
    return to_json(value).decode().encode("utf-16-le")


def inserted(character: str) -> Callable[[str], str]:
    return lambda segment: segment[:10] + character + segment[10:]


def claim(name: str, value: object) -> Mutation:
    return Mutation(claims={name: value})


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def homoglyph(text: str) -> str:
    """``text`` with its first Latin "a" or "e" swapped for a Cyrillic one."""
    for latin, cyrillic in (("a", "\u0430"), ("e", "\u0435")):
        if latin in text:
            return text.replace(latin, cyrillic, 1)
    raise AssertionError(f"nothing to swap in {text!r}")


def audience(change: Callable[[str], str]) -> Mutation:
    return Mutation(claims={"aud": lambda s: change(s.kind.audience)})


MAX = tokens.MAX_TOKEN_LENGTH


@dataclass(frozen=True)
class Carrier:
    """Where a request to the API puts a token, if not in Authorization."""

    authorization: str | None = None
    query: str = ""
    body: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def post(self, surface: Surface) -> ClientResponse:
        client = Client(enforce_csrf_checks=True)
        for name, value in self.cookies.items():
            client.cookies[name] = value
        headers: dict[str, Any] = {
            "HTTP_IDEMPOTENCY_KEY": "security-suite",
            **self.headers,
        }
        if self.authorization is not None:
            headers["HTTP_AUTHORIZATION"] = self.authorization
        return client.post(
            NOTIFICATIONS + self.query,
            json.dumps({**notification_body(surface.alice), **self.body}),
            content_type="application/json",
            **headers,
        )


# fmt: off
SEGMENT_CASES: list[Case] = [
    ("one-segment", edit(lambda t: t.split(".")[0]), MALFORMED),
    ("two-segments", edit(lambda t: t.rsplit(".", 1)[0]), MALFORMED),
    ("four-segments", edit(lambda t: t + "." + t.split(".")[2]), MALFORMED),
    ("five-segments", edit(lambda t: t + "." + t.split(".")[0] + ".e30"), MALFORMED),
    ("empty-header-segment", edit(at_segment(0, lambda s: "")), MALFORMED),
    ("empty-payload-segment", edit(at_segment(1, lambda s: "")), MALFORMED),
    ("leading-dot", edit(lambda t: "." + t), MALFORMED),
    ("trailing-dot", edit(lambda t: t + "."), MALFORMED),
    ("dots-only", literal(".."), MALFORMED),
    ("blank", literal(" "), MALFORMED),
    ("empty-token", literal(""), refused(ws="no-token", api="malformed")),
]

JSON_CASES: list[Case] = [
    ("header-not-json", header_json(b"alg=HS256"), MALFORMED),
    ("header-array", header_json(b'[{"alg":"HS256"}]'), MALFORMED),
    ("header-string", header_json(b'"HS256"'), MALFORMED),
    ("header-number", header_json(b"256"), MALFORMED),
    ("header-null", header_json(b"null"), MALFORMED),
    ("header-empty-object", header_json(b"{}"), MALFORMED),
    ("header-utf-16", Mutation(header_json=utf_16), MALFORMED),
    ("header-invalid-utf8", header_json(b'{"alg":"HS256","kid":"\xff"}'), MALFORMED),
    ("header-deeply-nested", header_json(deep(500)), MALFORMED),
    ("header-kid-nan", Mutation(header={"kid": float("nan")}), MALFORMED),
    ("payload-not-json", payload_json(b"sub=1"), BAD_CLAIMS),
    ("payload-array", payload_json(lambda c: to_json([c])), BAD_CLAIMS),
    ("payload-string", payload_json(b'"claims"'), BAD_CLAIMS),
    ("payload-number", payload_json(b"1"), BAD_CLAIMS),
    ("payload-null", payload_json(b"null"), BAD_CLAIMS),
    ("payload-true", payload_json(b"true"), BAD_CLAIMS),
    ("payload-empty-object", payload_json(b"{}"), BAD_CLAIMS),
    ("payload-empty-bytes", payload_json(b""), MALFORMED),
    ("payload-invalid-utf8", payload_json(lambda c: to_json(c)[:-1] + b',"x":"\xff"}'),
     BAD_CLAIMS),
    # RFC 8725 section 3.7: JSON in a JWT is UTF-8, and only UTF-8.
    ("payload-utf8-bom", payload_json(lambda c: BOM + to_json(c)), BAD_CLAIMS),
    ("payload-utf-16", payload_json(utf_16), BAD_CLAIMS),
    ("payload-trailing-garbage", payload_json(lambda c: to_json(c) + b"x"), BAD_CLAIMS),
    ("payload-two-objects", payload_json(lambda c: to_json(c) * 2), BAD_CLAIMS),
    ("payload-nested-to-the-size-limit", payload_json(deep(700)), BAD_CLAIMS),
    ("repeated-exp-later-last", repeated("exp", 4_000_000_000), BAD_CLAIMS),
    ("repeated-aud-other-kind-last", repeated("aud", "dashify:elsewhere"), BAD_CLAIMS),
    ("repeated-jti", repeated("jti", "ab" * 16), BAD_CLAIMS),
    ("repeated-iat", repeated("iat", 0), BAD_CLAIMS),
    ("exp-nan", Mutation(claims={"exp": float("nan")}), BAD_CLAIMS),
    ("exp-infinity", Mutation(claims={"exp": float("inf")}), BAD_CLAIMS),
    ("nbf-minus-infinity", Mutation(claims={"nbf": float("-inf")}), BAD_CLAIMS),
    ("iat-nan", Mutation(claims={"iat": float("nan")}), BAD_CLAIMS),
]

ENCODING_CASES: list[Case] = [
    ("padded-every-segment", Mutation(encode=lambda b: padded(b64url(b))), MALFORMED),
    ("padded-signature", edit(at_segment(2, padded)), MALFORMED),
    ("padded-payload", until(lambda t: "=" in t, Mutation(
        segments=lambda parts: [parts[0], padded(parts[1])])), MALFORMED),
    ("standard-alphabet", until(lambda t: "+" in t or "/" in t,
                                Mutation(encode=standard_b64)), MALFORMED),
    ("space-in-payload", edit(at_segment(1, inserted(" "))), MALFORMED),
    ("newline-in-payload", edit(at_segment(1, inserted("\n"))), MALFORMED),
    ("tab-in-signature", edit(at_segment(2, inserted("\t"))), MALFORMED),
    ("leading-space", edit(lambda t: " " + t), MALFORMED),
    ("trailing-newline", edit(lambda t: t + "\n"), MALFORMED),
    ("exclamation-mark", edit(at_segment(1, lambda s: s[:-1] + "!")), MALFORMED),
    ("asterisk", edit(at_segment(0, lambda s: "*" + s[1:])), MALFORMED),
    ("tilde", edit(at_segment(2, lambda s: s[:-1] + "~")), MALFORMED),
    ("percent-sign", edit(at_segment(1, lambda s: s[:-1] + "%")), MALFORMED),
    ("non-ascii-letter", edit(at_segment(1, lambda s: s[:-1] + "\u00e9")), MALFORMED),
    ("signature-non-canonical-bits", edit(at_segment(2, other_padding_bits)),
     MALFORMED),
    ("payload-non-canonical-bits", until(lambda t: len(t.split(".")[1]) % 4 > 1,
                                         Mutation(segments=lambda p: [
                                             p[0], other_padding_bits(p[1])])),
     MALFORMED),
    ("payload-impossible-length", Mutation(
        segments=lambda p: [p[0], p[1] + "A" * ((1 - len(p[1])) % 4)]), MALFORMED),
]

SIZE_CASES: list[Case] = [
    ("exactly-the-maximum-length", of_length(MAX), ACCEPTED),
    ("one-over-the-maximum-length", of_length(MAX + 1), MALFORMED),
    ("oversized-3-kb", filler(3 * 1024), OVERSIZED),
    ("oversized-64-kb", filler(64 * 1024), OVERSIZED),
]

CHARACTER_CASES: list[Case] = [
    ("aud-trailing-nul", audience(lambda a: a + "\x00"), WRONG_AUDIENCE),
    ("aud-trailing-newline", audience(lambda a: a + "\n"), WRONG_AUDIENCE),
    ("aud-upper-case", audience(str.upper), WRONG_AUDIENCE),
    ("aud-cyrillic-homoglyph", audience(homoglyph), WRONG_AUDIENCE),
    ("aud-right-to-left-override", audience(lambda a: "\u202e" + a), WRONG_AUDIENCE),
    ("jti-with-nul", Mutation(claims={"jti": "ab" * 15 + "\x00a"}), BAD_CLAIMS),
    ("jti-trailing-newline", claim("jti", lambda s: s.jti + "\n"), BAD_CLAIMS),
    ("jti-fullwidth-digits", Mutation(claims={"jti": "\uff11" * 32}), BAD_CLAIMS),
    ("jti-arabic-indic-digits", Mutation(claims={"jti": "\u0661" * 32}), BAD_CLAIMS),
]

# Claims that only one kind carries.
OWN_CHARACTER_CASES: dict[str, list[Case]] = {
    "ws": [
        ("sub-fullwidth-digit", Mutation(claims={"sub": "\uff11"}), BAD_CLAIMS),
        ("sub-arabic-indic-digit", Mutation(claims={"sub": "\u0661"}), BAD_CLAIMS),
        ("sub-trailing-newline", Mutation(claims={"sub": lambda s: f"{s.alice.pk}\n"}),
         BAD_CLAIMS),
        ("sub-with-nul", Mutation(claims={"sub": lambda s: f"{s.alice.pk}\x00"}),
         BAD_CLAIMS),
        ("sid-upper-case", Mutation(claims={"sid": lambda s: s.binding.upper()}),
         BAD_CLAIMS),
        ("sid-fullwidth-digits", Mutation(claims={"sid": "\uff10" * 32}), BAD_CLAIMS),
    ],
    "api": [
        ("iss-trailing-nul", Mutation(claims={"iss": "dashify-worker\x00"}),
         refused("wrong-issuer")),
        ("iss-cyrillic-homoglyph", claim("iss", homoglyph("dashify-worker")),
         refused("wrong-issuer")),
        ("scope-trailing-newline", Mutation(claims={"scope": lambda s: s.scope + "\n"}),
         refused("insufficient-scope")),
        ("scope-with-nul", Mutation(claims={"scope": lambda s: s.scope + "\x00"}),
         refused("insufficient-scope")),
        ("scope-cyrillic-homoglyph", claim("scope", lambda s: homoglyph(s.scope)),
         refused("insufficient-scope")),
    ],
}

# (id, path and query string built from a valid token, outcome)
QUERY_CASES: list[tuple[str, Callable[[str], str], str]] = [
    ("no-query", lambda t: "/ws/", "no-token"),
    ("empty-query", lambda t: "/ws/?", "no-token"),
    ("empty-token", lambda t: "/ws/?token=", "no-token"),
    ("name-without-value", lambda t: "/ws/?token", "no-token"),
    ("repeated", lambda t: f"/ws/?token={t}&token={t}", "no-token"),
    ("empty-then-right", lambda t: f"/ws/?token=&token={t}", "no-token"),
    ("right-then-empty", lambda t: f"/ws/?token={t}&token=", "no-token"),
    ("array-name", lambda t: f"/ws/?token[]={t}", "no-token"),
    ("array-name-encoded", lambda t: f"/ws/?token%5B%5D={t}", "no-token"),
    ("array-index", lambda t: f"/ws/?token[0]={t}", "no-token"),
    ("capitalised-name", lambda t: f"/ws/?Token={t}", "no-token"),
    ("other-name", lambda t: f"/ws/?access_token={t}", "no-token"),
    ("name-with-nul", lambda t: f"/ws/?token%00={t}", "no-token"),
    ("name-with-space", lambda t: f"/ws/?token%20={t}", "no-token"),
    ("five-parameters", lambda t: f"/ws/?a=1&b=2&c=3&d=4&token={t}", "no-token"),
    ("non-ascii-in-query", lambda t: f"/ws/?token={t}&x=\u00e9", "no-token"),
    ("query-over-the-limit", lambda t: f"/ws/?token={t}&pad={'x' * 3000}", "no-token"),
    ("token-in-the-path", lambda t: f"/ws/{t}/", "no-route"),
    ("nul-appended", lambda t: f"/ws/?token={t}%00", "malformed"),
    ("nul-prepended", lambda t: f"/ws/?token=%00{t}", "malformed"),
    ("nul-only", lambda t: "/ws/?token=%00", "malformed"),
    ("plus-before-token", lambda t: f"/ws/?token=+{t}", "malformed"),
    ("double-encoded-dots", lambda t: f"/ws/?token={t.replace('.', '%252E')}",
     "malformed"),
    ("semicolon-separator", lambda t: f"/ws/?token={t};x=1", "malformed"),
    ("semicolon-repeated", lambda t: f"/ws/?token={t};token={t}", "malformed"),
    # Percent-decoding is the URL's, not a bypass: the same token, spent once.
    ("encoded-dots", lambda t: "/ws/?token=" + t.replace(".", "%2E"), ACCEPT),
    ("every-character-encoded",
     lambda t: "/ws/?token=" + "".join(f"%{b:02X}" for b in t.encode()), ACCEPT),
    ("encoded-name", lambda t: f"/ws/?%74oken={t}", ACCEPT),
]

# (id, headers carrying a valid token instead of the query string)
SOCKET_HEADER_CASES: list[tuple[str, Callable[[str], list[tuple[bytes, bytes]]]]] = [
    ("authorization-header", lambda t: [(b"authorization", b"Bearer " + t.encode())]),
    ("subprotocol", lambda t: [(b"sec-websocket-protocol", t.encode())]),
    ("cookie", lambda t: [(b"cookie", b"token=" + t.encode())]),
]

# (id, request that carries a valid token, outcome)
API_TRANSPORT_CASES: list[tuple[str, Callable[[str], Carrier], str]] = [
    ("token-in-query-string", lambda t: Carrier(query=f"?access_token={t}"),
     "no-token"),
    ("token-in-body", lambda t: Carrier(body={"access_token": t}), "no-token"),
    ("token-in-cookie", lambda t: Carrier(cookies={"access_token": t}), "no-token"),
    ("token-in-other-header", lambda t: Carrier(headers={"HTTP_X_AUTH_TOKEN": t}),
     "no-token"),
    ("bearer-without-space", lambda t: Carrier(f"Bearer{t}"), "not-bearer"),
    ("bearer-tab", lambda t: Carrier(f"Bearer\t{t}"), "not-bearer"),
    ("basic-with-token", lambda t: Carrier(f"Basic {t}"), "not-bearer"),
    ("token-without-scheme", lambda t: Carrier(t), "not-bearer"),
    ("bearer-two-tokens", lambda t: Carrier(f"Bearer {t}, Bearer {t}"), "malformed"),
    ("bearer-token-twice", lambda t: Carrier(f"Bearer {t} {t}"), "malformed"),
    ("bearer-trailing-space", lambda t: Carrier(f"Bearer {t} "), "malformed"),
    ("bearer-quoted", lambda t: Carrier(f'Bearer "{t}"'), "malformed"),
    ("bearer-token68-padding", lambda t: Carrier(f"Bearer {t}=="), "malformed"),
]
# fmt: on


@pytest.mark.parametrize(
    ("surface", "mutation", "expect"),
    on_both(SEGMENT_CASES + JSON_CASES + ENCODING_CASES + SIZE_CASES),
    indirect=["surface"],
)
def test_anything_but_the_compact_form_dashify_writes_is_refused(
    surface: Surface, mutation: Mutation, expect: Expect
) -> None:
    surface.attack(mutation, expect)


@pytest.mark.parametrize(
    ("surface", "mutation", "expect"),
    on_both(CHARACTER_CASES) + on_each(OWN_CHARACTER_CASES),
    indirect=["surface"],
)
def test_control_and_look_alike_characters_in_claims_are_refused(
    surface: Surface, mutation: Mutation, expect: Expect
) -> None:
    surface.attack(mutation, expect)


@pytest.mark.parametrize(
    ("surface", "path_of", "outcome"),
    [
        pytest.param("ws", path, outcome, id=f"ws:{case}")
        for case, path, outcome in QUERY_CASES
    ],
    indirect=["surface"],
)
def test_the_socket_takes_the_token_from_exactly_one_query_parameter(
    surface: WebSocketSurface, path_of: Callable[[str], str], outcome: str
) -> None:
    token = surface.forge()

    surface.check(token, outcome, lambda: handshake(path_of(token)))


@pytest.mark.parametrize(
    ("surface", "headers_of"),
    [
        pytest.param("ws", headers, id=f"ws:{case}")
        for case, headers in SOCKET_HEADER_CASES
    ],
    indirect=["surface"],
)
def test_the_socket_ignores_a_token_sent_anywhere_but_the_query(
    surface: WebSocketSurface,
    headers_of: Callable[[str], list[tuple[bytes, bytes]]],
) -> None:
    token = surface.forge()

    surface.check(
        token, "no-token", lambda: handshake("/ws/", headers=headers_of(token))
    )


@pytest.mark.parametrize(
    ("surface", "carrier_of", "outcome"),
    [
        pytest.param("api", carrier, outcome, id=f"api:{case}")
        for case, carrier, outcome in API_TRANSPORT_CASES
    ],
    indirect=["surface"],
)
def test_the_api_takes_the_token_only_from_a_bearer_authorization_header(
    surface: Surface, carrier_of: Callable[[str], Carrier], outcome: str
) -> None:
    token = surface.forge()
    carrier = carrier_of(token)

    surface.check(token, outcome, lambda: carrier.post(surface))
