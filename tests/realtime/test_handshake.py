"""
The handshake admits a socket only with an allowed Origin and one unspent,
valid token, and says why it refused only in the security log.
"""

import hashlib
import json
import logging
import socket
import string
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.models import Tenant, User
from realtime.models import Notification
from tests.conftest import PASSWORD, csrf_headers
from tests.realtime.conftest import (
    SECURITY_LOGGER,
    Person,
    allowed_origin,
    b64url,
    b64url_decode,
    communicator,
    encode_segment,
    handshake_accepted,
    open_socket,
    refusal_lines,
    sign,
    sign_raw,
    to_json,
    ws_claims,
    ws_header,
    ws_path,
)

pytestmark = pytest.mark.django_db(transaction=True)

LEEWAY = settings.DASHIFY_WS_TOKEN_LEEWAY
TTL = settings.DASHIFY_WS_TOKEN_TTL
WS_SECRET = settings.DASHIFY_WS_TOKEN_SECRET
SERVICE_SECRET = settings.DASHIFY_SERVICE_TOKEN_SECRET


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.1)
        self.connections = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/keys.json"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    # Prove that a fetch would be counted before relying on a count of zero.
    socket.create_connection(server.sock.getsockname(), timeout=1).close()
    deadline = time.monotonic() + 2
    while server.connections == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.connections == 1
    server.connections = 0
    yield server
    server.stop()


@dataclass
class Forge:
    now: int
    listener_url: str


def payload_changed(**changes: Any) -> Callable[[str], str]:
    """Change claims of a token and keep its signature."""

    def tamper(token: str) -> str:
        header, payload, signature = token.split(".")
        claims = {**json.loads(b64url_decode(payload)), **changes}
        return f"{header}.{encode_segment(claims)}.{signature}"

    return tamper


def header_changed(**changes: Any) -> Callable[[str], str]:
    """Change header fields of a token and keep its signature."""

    def tamper(token: str) -> str:
        header, payload, signature = token.split(".")
        fields = {**json.loads(b64url_decode(header)), **changes}
        return f"{encode_segment(fields)}.{payload}.{signature}"

    return tamper


def flip_signature_bit(token: str) -> str:
    head, signature = token.rsplit(".", 1)
    raw = bytearray(b64url_decode(signature))
    raw[0] ^= 0x01
    return f"{head}.{b64url(bytes(raw))}"


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str) -> str:
    return f"{encode_segment(header)}.{encode_segment(payload)}.{signature}"


Builder = Callable[[Forge], str]


def signed_with(secret: str, head: dict[str, Any] | None = None) -> Builder:
    return lambda f: sign(head or ws_header(), ws_claims(f.now), secret)


def none_alg(spelling: str, signed: bool) -> Builder:
    def build(f: Forge) -> str:
        head, claims = ws_header(alg=spelling), ws_claims(f.now)
        if signed:
            return sign(head, claims, WS_SECRET)
        return unsigned(head, claims, "")

    return build


def hmac_alg(name: str, digest: Callable[..., Any]) -> Builder:
    return lambda f: sign(ws_header(alg=name), ws_claims(f.now), WS_SECRET, digest)


def without(claim: str) -> Builder:
    def build(f: Forge) -> str:
        claims = ws_claims(f.now)
        del claims[claim]
        return sign(ws_header(), claims, WS_SECRET)

    return build


def claims(**changes: Any) -> Builder:
    return lambda f: sign(ws_header(), ws_claims(f.now, **changes), WS_SECRET)


def exp_as(convert: Callable[[int], object]) -> Builder:
    return lambda f: sign(
        ws_header(), ws_claims(f.now, exp=convert(f.now + 300)), WS_SECRET
    )


def times(iat: int, nbf: int, exp: int) -> Builder:
    """Sign claims whose times are these offsets from now."""
    return lambda f: sign(
        ws_header(),
        ws_claims(f.now, iat=f.now + iat, nbf=f.now + nbf, exp=f.now + exp),
        WS_SECRET,
    )


def header(**changes: Any) -> Builder:
    return lambda f: sign(ws_header(**changes), ws_claims(f.now), WS_SECRET)


def header_without(name: str) -> Builder:
    def build(f: Forge) -> str:
        head = ws_header()
        del head[name]
        return sign(head, ws_claims(f.now), WS_SECRET)

    return build


def key_url_header(name: str) -> Builder:
    return lambda f: sign(
        ws_header(**{name: f.listener_url}), ws_claims(f.now), WS_SECRET
    )


ATTACKER_KEY = "attacker-chosen-key-of-sufficient-length-0123456789"
EMBEDDED_JWK = {"kty": "oct", "k": b64url(ATTACKER_KEY.encode())}


def repeated_claim(f: Forge) -> str:
    # json.dumps cannot write a member twice; splice a second "sub" in.
    payload = to_json(ws_claims(f.now))[:-1] + b',"sub":"2"}'
    return sign_raw(to_json(ws_header()), payload, WS_SECRET)


def literal(token: str) -> Builder:
    return lambda f: token


SIGNED_BY_EMBEDDED_JWK = signed_with(ATTACKER_KEY, ws_header(jwk=EMBEDDED_JWK))
EXPIRED = times(iat=-300 - LEEWAY, nbf=-300 - LEEWAY, exp=-LEEWAY - 1)
OVERSIZE = f"{'a' * 1900}.{'b' * 105}.{'c' * 43}"

# fmt: off
# (id, token builder, logged reason); one line per case.
REFUSED_TOKENS: list[tuple[str, Builder, str]] = [
    ("service-token-secret", signed_with(SERVICE_SECRET), "bad-signature"),
    ("django-secret-key", signed_with(settings.SECRET_KEY), "bad-signature"),
    ("empty-secret", signed_with(""), "bad-signature"),
    ("alg-none-unsigned", none_alg("none", signed=False), "malformed"),
    ("alg-None-unsigned", none_alg("None", signed=False), "malformed"),
    ("alg-NONE-unsigned", none_alg("NONE", signed=False), "malformed"),
    ("alg-nOnE-unsigned", none_alg("nOnE", signed=False), "malformed"),
    ("alg-none-signed", none_alg("none", signed=True), "malformed"),
    ("alg-None-signed", none_alg("None", signed=True), "malformed"),
    ("alg-NONE-signed", none_alg("NONE", signed=True), "malformed"),
    ("alg-nOnE-signed", none_alg("nOnE", signed=True), "malformed"),
    ("alg-missing", header_without("alg"), "malformed"),
    ("hs384-right-secret", hmac_alg("HS384", hashlib.sha384), "malformed"),
    ("hs512-right-secret", hmac_alg("HS512", hashlib.sha512), "malformed"),
    ("rs256-header", hmac_alg("RS256", hashlib.sha256), "malformed"),
    ("missing-sub", without("sub"), "bad-claims"),
    ("missing-tid", without("tid"), "bad-claims"),
    ("missing-sid", without("sid"), "bad-claims"),
    ("missing-jti", without("jti"), "bad-claims"),
    ("missing-iat", without("iat"), "bad-claims"),
    ("missing-nbf", without("nbf"), "bad-claims"),
    ("missing-exp", without("exp"), "bad-claims"),
    ("missing-aud", without("aud"), "wrong-audience"),
    ("sub-as-int", claims(sub=1), "bad-claims"),
    ("sub-with-leading-zero", claims(sub="01"), "bad-claims"),
    ("tid-as-string", claims(tid="1"), "bad-claims"),
    ("tid-as-bool", claims(tid=True), "bad-claims"),
    ("exp-as-float", exp_as(float), "bad-claims"),
    ("exp-as-string", exp_as(str), "bad-claims"),
    ("jti-not-hex", claims(jti="zz" * 16), "bad-claims"),
    ("jti-upper-case-hex", claims(jti="AB" * 16), "bad-claims"),
    ("sid-too-short", claims(sid="ab" * 8), "bad-claims"),
    ("repeated-claim", repeated_claim, "bad-claims"),
    ("payload-not-object", lambda f: sign(ws_header(), [], WS_SECRET), "bad-claims"),
    ("expired-just-outside-leeway", EXPIRED, "expired"),
    ("not-yet-valid", times(iat=0, nbf=LEEWAY + 60, exp=600), "not-yet-valid"),
    ("issued-in-future", times(iat=LEEWAY + 60, nbf=0, exp=600), "issued-in-future"),
    ("lifetime-over-ttl", times(iat=0, nbf=0, exp=TTL + 1), "lifetime-too-long"),
    ("nbf-before-iat", times(iat=0, nbf=-10, exp=300), "lifetime-too-long"),
    ("service-audience", claims(aud="dashify:internal-api"), "wrong-audience"),
    ("audience-as-list", claims(aud=["dashify:websocket"]), "wrong-audience"),
    ("typ-jwt", header(typ="JWT"), "bad-header"),
    ("typ-service-token", header(typ="dashify-service+jwt"), "bad-header"),
    ("typ-missing", header_without("typ"), "bad-header"),
    ("kid-not-string", header(kid=7), "malformed"),
    ("jku-header", key_url_header("jku"), "bad-header"),
    ("x5u-header", key_url_header("x5u"), "bad-header"),
    ("jwk-header-right-secret", header(jwk=EMBEDDED_JWK), "bad-header"),
    ("jwk-header-embedded-key", SIGNED_BY_EMBEDDED_JWK, "bad-signature"),
    ("x5c-header", header(x5c=["MIIB"]), "bad-header"),
    ("crit-header", header(crit=["exp"]), "malformed"),
    ("oversize-token", literal(OVERSIZE), "malformed"),
    ("not-a-jwt", literal("not-a-token"), "malformed"),
]
# fmt: on


@pytest.mark.parametrize(
    ("build", "reason"),
    [pytest.param(build, reason, id=name) for name, build, reason in REFUSED_TOKENS],
)
async def test_handshake_refuses_a_bad_token_and_logs_the_category(
    build: Builder,
    reason: str,
    listener: Listener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = build(Forge(now=int(time.time()), listener_url=listener.url))
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    connected = await handshake_accepted(ws_path(token))

    assert connected is False
    assert refusal_lines(caplog) == [
        f"ws handshake refused reason={reason} user=- tenant=-"
    ]
    assert listener.connections == 0


# fmt: off
# (id, change to a genuine token, logged reason); one line per case.
TAMPERED_TOKENS: list[tuple[str, Callable[[str], str], str]] = [
    ("tampered-subject", payload_changed(sub="999"), "bad-signature"),
    ("tampered-tenant", payload_changed(tid=999), "bad-signature"),
    ("flipped-signature-bit", flip_signature_bit, "bad-signature"),
    ("truncated-signature", lambda token: token[:-1], "malformed"),
    ("header-swapped-to-none", header_changed(alg="none"), "malformed"),
]
# fmt: on


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [pytest.param(tamper, reason, id=name) for name, tamper, reason in TAMPERED_TOKENS],
)
async def test_handshake_refuses_a_tampered_genuine_token(
    tamper: Callable[[str], str],
    reason: str,
    alice_in: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = tamper(await sync_to_async(alice_in.token)())
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    connected = await handshake_accepted(ws_path(token))

    assert connected is False
    assert refusal_lines(caplog) == [
        f"ws handshake refused reason={reason} user=- tenant=-"
    ]


async def test_handshake_refuses_an_oversize_token_before_verifying_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)
    connected = await handshake_accepted(ws_path("a" * 10_000))

    assert connected is False
    assert refusal_lines(caplog) == [
        "ws handshake refused reason=no-token user=- tenant=-"
    ]


# (id, query string built from a valid token)
REFUSED_QUERIES: list[tuple[str, Callable[[str], str]]] = [
    ("missing-token", lambda token: "/ws/"),
    ("empty-token", lambda token: "/ws/?token="),
    ("repeated-token", lambda token: f"/ws/?token={token}&token={token}"),
    ("other-parameter-name", lambda token: f"/ws/?access_token={token}"),
]


@pytest.mark.parametrize(
    "path_of", [pytest.param(path_of, id=name) for name, path_of in REFUSED_QUERIES]
)
async def test_handshake_refuses_a_query_without_exactly_one_token(
    path_of: Callable[[str], str],
    alice_in: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = await sync_to_async(alice_in.token)()
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    connected = await handshake_accepted(path_of(token))

    assert connected is False
    assert refusal_lines(caplog) == [
        "ws handshake refused reason=no-token user=- tenant=-"
    ]


def other_port(origin: str) -> str:
    scheme, host, port = origin.split(":")
    return f"{scheme}:{host}:{int(port) + 1}"


# (id, Origin headers sent)
REFUSED_ORIGINS: list[tuple[str, Callable[[], list[str]]]] = [
    ("foreign", lambda: ["http://evil.example"]),
    ("missing", lambda: []),
    ("null", lambda: ["null"]),
    ("other-port", lambda: [other_port(allowed_origin())]),
    ("other-scheme", lambda: [allowed_origin().replace("http://", "https://")]),
    ("no-port", lambda: [allowed_origin().rsplit(":", 1)[0]]),
    ("look-alike-suffix", lambda: [allowed_origin() + ".evil.example"]),
    ("look-alike-subdomain", lambda: [allowed_origin().replace("//", "//evil.", 1)]),
    ("look-alike-userinfo", lambda: [allowed_origin().replace("//", "//evil@", 1)]),
    ("trailing-slash", lambda: [allowed_origin() + "/"]),
    ("twice", lambda: [allowed_origin(), allowed_origin()]),
    ("allowed-then-foreign", lambda: [allowed_origin(), "http://evil.example"]),
]


@pytest.mark.parametrize(
    "origins_of",
    [pytest.param(origins_of, id=name) for name, origins_of in REFUSED_ORIGINS],
)
async def test_handshake_refuses_an_origin_that_is_not_exactly_allowed(
    origins_of: Callable[[], list[str]],
    alice_in: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = await sync_to_async(alice_in.token)()
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    connected = await handshake_accepted(ws_path(token), origins=origins_of())

    assert connected is False
    assert refusal_lines(caplog) == [
        "ws handshake refused reason=bad-origin user=- tenant=-"
    ]


@pytest.mark.parametrize("origin", settings.DASHIFY_ALLOWED_ORIGINS)
async def test_handshake_accepts_each_allowed_origin(
    origin: str, alice_in: Person
) -> None:
    token = await sync_to_async(alice_in.token)()
    connected = await handshake_accepted(ws_path(token), origins=[origin])

    assert connected is True


async def test_accepted_handshake_says_hello_with_ids_and_unread_count(
    alice_in: Person, caplog: pytest.LogCaptureFixture
) -> None:
    alice = alice_in.user
    await Notification.objects.acreate(user=alice, text="Welcome")
    token = await sync_to_async(alice_in.token)()
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    async with open_socket(token) as (_, hello):
        pass

    assert hello == {
        "type": "hello",
        "user": alice.pk,
        "tenant": alice.tenant_id,
        "unread": 1,
        "limits": {
            "max_frame_bytes": settings.DASHIFY_WS_MAX_FRAME_BYTES,
            "rate": settings.DASHIFY_WS_RATE,
            "burst": settings.DASHIFY_WS_BURST,
        },
    }
    assert f"ws handshake accepted user={alice.pk} tenant={alice.tenant_id}" in [
        r.getMessage() for r in caplog.records if r.name == SECURITY_LOGGER
    ]


# --- refusals of genuine tokens whose session or single use is gone ------------------


def logout(person: Person) -> None:
    response = person.client.post("/accounts/logout/", **csrf_headers(person.client))
    assert response.status_code == 302


def change_password(person: Person) -> None:
    response = person.client.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-brand-new-passphrase-42",
            "new_password2": "a-brand-new-passphrase-42",
        },
        **csrf_headers(person.client),
    )
    assert response.status_code == 302, response.content


def deactivate(person: Person) -> None:
    user = User.objects.get(pk=person.user.pk)
    user.is_active = False
    user.save()


def move_to_another_tenant(person: Person) -> None:
    user = User.objects.get(pk=person.user.pk)
    user.tenant = Tenant.objects.create(slug="initech", name="Initech")
    user.save()


async def test_handshake_refuses_a_token_used_a_second_time(
    alice_in: Person, caplog: pytest.LogCaptureFixture
) -> None:
    alice = alice_in.user
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token):
        pass
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    connected = await handshake_accepted(ws_path(token))

    assert connected is False
    assert refusal_lines(caplog) == [
        f"ws handshake refused reason=replayed-or-revoked "
        f"user={alice.pk} tenant={alice.tenant_id}"
    ]


def with_other_padding_bits(token: str) -> str:
    # 32 signature bytes fill 42 base64 characters and 4 bits of the 43rd;
    # its 2 low bits are padding that lenient decoders ignore, so this is
    # another spelling of the same signature.
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    last = alphabet[alphabet.index(token[-1]) ^ 0b01]
    return token[:-1] + last


async def test_handshake_refuses_a_non_canonical_spelling_of_a_genuine_signature(
    alice_in: Person, caplog: pytest.LogCaptureFixture
) -> None:
    token = await sync_to_async(alice_in.token)()
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    connected = await handshake_accepted(ws_path(with_other_padding_bits(token)))

    assert connected is False
    assert refusal_lines(caplog) == [
        "ws handshake refused reason=malformed user=- tenant=-"
    ]


async def test_a_refused_handshake_does_not_spend_the_genuine_token(
    alice_in: Person,
) -> None:
    token = await sync_to_async(alice_in.token)()
    refused = communicator(ws_path(token), origins=["http://evil.example"])
    try:
        await refused.connect()
    finally:
        await refused.disconnect()

    async with open_socket(token) as (_, hello):
        assert hello["user"] == alice_in.user.pk


@pytest.mark.parametrize(
    "end_session",
    [
        pytest.param(logout, id="logout"),
        pytest.param(change_password, id="password-change"),
        pytest.param(deactivate, id="deactivation"),
        pytest.param(move_to_another_tenant, id="tenant-change"),
    ],
)
async def test_handshake_refuses_an_unspent_token_of_an_ended_session(
    end_session: Callable[[Person], None],
    alice_in: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice = alice_in.user
    token = await sync_to_async(alice_in.token)()
    await sync_to_async(end_session)(alice_in)
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    connected = await handshake_accepted(ws_path(token))

    assert connected is False
    assert refusal_lines(caplog) == [
        f"ws handshake refused reason=replayed-or-revoked "
        f"user={alice.pk} tenant={alice.tenant_id}"
    ]


# --- no state for strangers ------------------------------------------------------


def own_keys() -> set[tuple[str, bytes]]:
    pattern = f"{settings.DASHIFY_REDIS_KEY_PREFIX}:*"
    found = set()
    for purpose, url in settings.DASHIFY_REDIS_URLS.items():
        client = redis.Redis.from_url(url)
        try:
            found |= {(purpose, k) for k in client.scan_iter(match=pattern)}
        finally:
            client.close()
    return found


async def test_handshake_with_a_bad_signature_creates_no_redis_key(
    alice_in: Person,
) -> None:
    minted = await sync_to_async(alice_in.token)()
    forged = flip_signature_bit(minted)
    before = await sync_to_async(own_keys)()

    connected = await handshake_accepted(ws_path(forged))

    assert connected is False
    assert await sync_to_async(own_keys)() == before


async def test_a_socket_on_another_path_is_refused_before_its_token_is_spent(
    alice_in: Person, caplog: pytest.LogCaptureFixture
) -> None:
    token = await sync_to_async(alice_in.token)()

    elsewhere = await handshake_accepted(f"/wsx/?token={token}")
    refusals = [
        r.getMessage()
        for r in caplog.records
        if r.name == SECURITY_LOGGER and "handshake refused" in r.getMessage()
    ]
    at_the_route = await handshake_accepted(ws_path(token))

    assert (elsewhere, at_the_route) == (False, True)
    assert refusals == ["ws handshake refused reason=no-route user=- tenant=-"]
