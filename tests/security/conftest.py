"""
The attacker's workbench for tests/security.

A case is one mutation of a valid token: header members, claims, the key
and algorithm that sign it, or raw edits of its segments. A ``Surface``
has Dashify issue a genuine token, with its own code, for alice's real
signed-in session (accounts.services.issue_ws_token) or for the
notification call the worker would make (worker.api.issue_service_token),
which records the single-use marker; it then rebuilds the token as the
mutation says, so that the mutation alone can explain a refusal.
``Surface.attack`` presents the forgery and checks the outcome: the fixed
refusal, the one "dashify.security" line with its category, no Redis key
created (none touched at all when the token did not verify), nothing of
the token or its claims in the answer, and nothing of it in any log record.

Each table runs on both surfaces, selected by the indirect ``surface``
parameter: the WebSocket handshake (dashify.asgi.application through
WebsocketCommunicator, with an allowed Origin) and the internal API
(POST /internal/notifications/ through the Django test client, with a
valid body for the token's scope). test_workbench.py proves that the
unmutated forgery is accepted on both, which is what makes a refusal mean
something.

The people here have no usable password: an Argon2 hash costs about a
third of a second, and a suite of several hundred cases never types one.
Tests that need a password set one.
"""

import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from django.conf import settings
from django.http import HttpResponse
from django.test import Client

from accounts import tokens
from accounts.models import Tenant, User
from accounts.services import issue_ws_token, session_binding
from dashify.asgi import application
from dashify.redis import get_client, key
from internal import scopes
from internal.auth import ApiRefusal
from realtime.middleware import HandshakeRefusal
from realtime.models import Notification
from worker.api import issue_service_token

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as ClientResponse
else:
    ClientResponse = HttpResponse

SECURITY_LOGGER = "dashify.security"
NOTIFICATIONS = "/internal/notifications/"
LEEWAY = settings.DASHIFY_WS_TOKEN_LEEWAY

# The outcome of a case that must get through.
ACCEPT = "accepted"

NO_TOKEN_CHALLENGE = 'Bearer realm="dashify-internal"'
INVALID_TOKEN_CHALLENGE = 'Bearer realm="dashify-internal", error="invalid_token"'
SCOPE_CHALLENGE = 'Bearer realm="dashify-internal", error="insufficient_scope"'

# Every word either surface could use to say why it refused.
REFUSAL_WORDS = sorted(
    {*map(str, tokens.Refusal), *map(str, ApiRefusal), *map(str, HandshakeRefusal)}
)


# --- expected outcomes -------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What each surface must do with a case: ACCEPT, or the logged category."""

    ws: str
    api: str

    def on(self, surface: str) -> str:
        return self.ws if surface == "ws" else self.api


def refused(
    reason: str | None = None, *, ws: str | None = None, api: str | None = None
) -> Expect:
    ws_reason, api_reason = ws or reason, api or reason
    assert ws_reason is not None and api_reason is not None
    return Expect(ws=str(ws_reason), api=str(api_reason))


ACCEPTED = Expect(ws=ACCEPT, api=ACCEPT)
# The token verified; its single use was gone. The surfaces name it differently.
REPLAYED = Expect(ws=str(HandshakeRefusal.REPLAYED), api=str(ApiRefusal.REPLAYED))


# --- compact serialisation by hand --------------------------------------------------
# PyJWT refuses to write most of what an attacker sends, so tokens are put
# together here from their parts.


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def to_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# Asymmetric keys of the attacker's own, for the algorithm-confusion cases.
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
RSA_PUBLIC_DER = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
EC_PUBLIC_PEM = EC_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


KeyRef = str | bytes | Callable[["Surface"], str | bytes]
Signer = Callable[[bytes, "Surface"], bytes]


def own_secret(surface: "Surface") -> str:
    """The secret of the surface's own token kind: the right key."""
    return surface.secret


def other_secret(surface: "Surface") -> str:
    """The secret of the other token kind."""
    return surface.other_secret


def _key_bytes(ref: KeyRef, surface: "Surface") -> bytes:
    value = ref(surface) if callable(ref) else ref
    return value.encode() if isinstance(value, str) else value


def hs(ref: KeyRef = own_secret, digest: Callable[..., Any] = hashlib.sha256) -> Signer:
    """Sign with HMAC under ``ref`` (the right secret unless told otherwise)."""

    def sign(signing_input: bytes, surface: "Surface") -> bytes:
        return hmac.new(_key_bytes(ref, surface), signing_input, digest).digest()

    return sign


def rs256(signing_input: bytes, surface: "Surface") -> bytes:
    return RSA_KEY.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def es256(signing_input: bytes, surface: "Surface") -> bytes:
    r, s = decode_dss_signature(EC_KEY.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def no_signature(signing_input: bytes, surface: "Surface") -> bytes:
    return b""


# --- mutations ----------------------------------------------------------------------


class _Drop(Enum):
    DROP = "drop"


# A header member or claim set to DROP is left out.
DROP = _Drop.DROP


def now_plus(offset: int) -> Callable[["Surface"], int]:
    """A time ``offset`` seconds from the genuine token's issue time (just now)."""
    return lambda surface: surface.now + offset


@dataclass(frozen=True)
class Mutation:
    """
    How a forgery differs from the genuine token Dashify just issued.

    Header and claim values may be callables of the Surface (resolved when
    the token is forged, e.g. ``now_plus(5)``). ``header_json`` and
    ``payload_json`` write the JSON bytes, ``encode`` turns bytes into a
    segment, ``segments`` edits the two signed segments before signing (the
    attacker signs what they send), ``sign`` makes the signature bytes, and
    ``edit`` changes the finished compact string. ``token`` replaces the
    whole procedure.
    """

    header: Mapping[str, object] = field(default_factory=dict)
    claims: Mapping[str, object] = field(default_factory=dict)
    sign: Signer = field(default=hs())
    header_json: Callable[[dict[str, Any]], bytes] = to_json
    payload_json: Callable[[dict[str, Any]], bytes] = to_json
    encode: Callable[[bytes], str] = b64url
    segments: Callable[[list[str]], list[str]] | None = None
    edit: Callable[[str], str] | None = None
    token: Callable[["Surface"], str] | None = None


UNCHANGED = Mutation()


def _apply(
    base: dict[str, Any], changes: Mapping[str, object], surface: "Surface"
) -> dict[str, Any]:
    result = dict(base)
    for name, value in changes.items():
        if value is DROP:
            result.pop(name, None)
        else:
            result[name] = value(surface) if callable(value) else value
    return result


# --- observing Redis and the logs -----------------------------------------------------


def redis_keys() -> set[tuple[str, bytes]]:
    """Every key under the suite's prefix, in every Redis database Dashify uses."""
    pattern = f"{settings.DASHIFY_REDIS_KEY_PREFIX}:*"
    found: set[tuple[str, bytes]] = set()
    for purpose, url in settings.DASHIFY_REDIS_URLS.items():
        client = redis.Redis.from_url(url)
        try:
            found |= {(purpose, name) for name in client.scan_iter(match=pattern)}
        finally:
            client.close()
    return found


def token_pieces(token: str) -> list[str]:
    """The token and its segments, those long enough to be recognised in a text."""
    return [part for part in [token, *token.split(".")] if len(part) >= 16]


def claim_values(token: str) -> list[str]:
    """Every decodable header or claim value of ``token`` worth searching for."""
    values: list[str] = []
    for segment in token.split(".")[:2]:
        try:
            decoded = json.loads(b64url_decode(segment))
        except ValueError:
            continue
        if isinstance(decoded, dict):
            values += [str(v) for v in decoded.values() if len(str(v)) >= 4]
    return values


def security_lines(caplog: pytest.LogCaptureFixture, topic: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == SECURITY_LOGGER and record.getMessage().startswith(topic)
    ]


def assert_not_logged(caplog: pytest.LogCaptureFixture, token: str) -> None:
    pieces = token_pieces(token)
    leaked = [
        f"{record.name}: {record.getMessage()[:120]}"
        for record in caplog.records
        if any(piece in record.getMessage() for piece in pieces)
    ]
    assert leaked == []


# --- the two surfaces -----------------------------------------------------------------


@dataclass(frozen=True)
class Handshake:
    """What a WebSocket client learns from a handshake."""

    connected: bool
    # The close code when refused (None, or a subprotocol, when accepted).
    code: int | str | None
    hello: dict[str, Any] | None


def allowed_origin() -> str:
    return settings.DASHIFY_ALLOWED_ORIGINS[0]


def ws_path(token: str) -> str:
    # As the dashboard does (encodeURIComponent): the verifier then sees
    # exactly the characters that were forged.
    return "/ws/?token=" + quote(token, safe="")


async def ahandshake(
    path: str,
    origins: list[str] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Handshake:
    """Open a socket on ``path``, read the hello if admitted, and close it."""
    sent = [
        *((b"origin", o.encode()) for o in origins or [allowed_origin()]),
        *(headers or []),
    ]
    socket_ = WebsocketCommunicator(application, path, headers=sent)
    try:
        connected, code = await socket_.connect(timeout=5)
        hello = await socket_.receive_json_from(timeout=5) if connected else None
    finally:
        await socket_.disconnect()
    return Handshake(connected=connected, code=code, hello=hello)


handshake = async_to_sync(ahandshake)


def notification_body(user: User) -> dict[str, Any]:
    return {
        "tenant": user.tenant_id,
        "user": user.pk,
        "text": "Security suite probe",
        "link": "/",
    }


def post_notification(
    body: dict[str, Any],
    authorization: str | None,
    idempotency_key: str = "security-suite",
    path: str = NOTIFICATIONS,
) -> ClientResponse:
    """POST as the worker does: no cookies, CSRF checks on."""
    headers: dict[str, Any] = {"HTTP_IDEMPOTENCY_KEY": idempotency_key}
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    return Client(enforce_csrf_checks=True).post(
        path, json.dumps(body), content_type="application/json", **headers
    )


def member(username: str, tenant_slug: str, **extra: object) -> User:
    """A user of the tenant with this slug, without a usable password."""
    tenant, _ = Tenant.objects.get_or_create(
        slug=tenant_slug, defaults={"name": tenant_slug.title()}
    )
    user = User(username=username, tenant=tenant, **extra)
    user.set_unusable_password()
    user.save()
    return user


def signed_in(user: User) -> Client:
    """A client with a real session of ``user`` in the real session engine."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    # The dashboard sets the CSRF cookie that minting a token needs.
    assert client.get("/").status_code == 200
    return client


class Surface:
    """One place a token is presented, with the token kind it expects."""

    name: str
    kind: tokens.TokenKind
    other_kind: tokens.TokenKind
    other_kid: str
    secret: str
    other_secret: str
    kid: str
    max_lifetime: int

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.caplog: pytest.LogCaptureFixture = request.getfixturevalue("caplog")
        self.caplog.set_level(logging.DEBUG)
        self.alice = member("alice", "acme")
        # Kept apart from the row, which a test may delete.
        self.alice_ids = (self.alice.pk, self.alice.tenant_id)
        # The genuine token behind the last forgery: its header, claims,
        # jti, and issue time (the "now" of time claims).
        self.header: dict[str, Any] = {}
        self.claims: dict[str, Any] = {}
        self.jti = ""
        self.now = int(time.time())
        self._carol: User | None = None
        # Seconds the last presentation took, for "answers at once" bounds.
        self.elapsed = 0.0

    # Values the tables use, made on first use.

    @property
    def carol(self) -> User:
        if self._carol is None:
            self._carol = member("carol", "globex")
        return self._carol

    @property
    def listener(self) -> "Listener":
        return self.request.getfixturevalue("listener")

    @property
    def canary(self) -> Path:
        """A file that a command injected anywhere would create."""
        return self.request.getfixturevalue("tmp_path") / "pwned"

    # Forging.

    def issue(self) -> str:
        """A genuine token from Dashify's own issuing code, marker recorded."""
        raise NotImplementedError

    def forge(self, mutation: Mutation = UNCHANGED) -> str:
        """
        Issue a genuine token and rebuild it as ``mutation`` says. The
        genuine token's marker stays in Redis, so a forgery that keeps the
        jti is refused only for what the mutation changed.
        """
        genuine = self.issue()
        header_segment, payload_segment, _ = genuine.split(".")
        self.header = json.loads(b64url_decode(header_segment))
        self.claims = json.loads(b64url_decode(payload_segment))
        self.jti, self.now = self.claims["jti"], self.claims["iat"]
        if mutation.token is not None:
            return mutation.token(self)

        header = _apply(self.header, mutation.header, self)
        claims = _apply(self.claims, mutation.claims, self)
        segments = [
            mutation.encode(mutation.header_json(header)),
            mutation.encode(mutation.payload_json(claims)),
        ]
        if mutation.segments is not None:
            segments = mutation.segments(segments)
        signature = mutation.sign(".".join(segments).encode(), self)
        token = ".".join([*segments, mutation.encode(signature)])
        return mutation.edit(token) if mutation.edit is not None else token

    # Presenting.

    def present(self, token: str) -> object:
        raise NotImplementedError

    def attack(self, mutation: Mutation, expect: Expect) -> str:
        """Forge, present, and check the outcome; return the token sent."""
        token = self.forge(mutation)
        self.check(token, expect.on(self.name), lambda: self.present(token))
        return token

    def check(
        self, token: str, outcome: str, present: Callable[[], object] | None = None
    ) -> None:
        before = redis_keys()
        self.before_presenting()
        self.caplog.clear()

        started = time.monotonic()
        observed = (present or (lambda: self.present(token)))()
        self.elapsed = time.monotonic() - started

        if outcome == ACCEPT:
            self.assert_accepted(observed)
        else:
            self.assert_refused(observed, outcome, token)
            after = redis_keys()
            assert after <= before, "a refused token created Redis keys"
            if outcome not in {HandshakeRefusal.REPLAYED, ApiRefusal.REPLAYED}:
                assert after == before, "a token that did not verify touched Redis"
        assert_not_logged(self.caplog, token)

    def before_presenting(self) -> None:
        """Note whatever assert_refused will compare with."""

    def assert_accepted(self, observed: Any) -> None:
        raise NotImplementedError

    def assert_refused(self, observed: Any, reason: str, token: str) -> None:
        raise NotImplementedError


class WebSocketSurface(Surface):
    """The handshake on /ws/, with alice's real session behind every token."""

    name = "ws"
    kind = tokens.WS_TOKEN
    other_kind = tokens.SERVICE_TOKEN
    other_kid = settings.DASHIFY_SERVICE_TOKEN_KID
    secret = settings.DASHIFY_WS_TOKEN_SECRET
    other_secret = settings.DASHIFY_SERVICE_TOKEN_SECRET
    kid = settings.DASHIFY_WS_TOKEN_KID
    max_lifetime = settings.DASHIFY_WS_TOKEN_TTL

    def __init__(self, request: pytest.FixtureRequest) -> None:
        super().__init__(request)
        self.client = signed_in(self.alice)
        self.session_key = self.client.cookies[settings.SESSION_COOKIE_NAME].value
        self.binding = session_binding(self.session_key)

    def issue(self) -> str:
        return issue_ws_token(self.alice, self.session_key).token

    def marker_exists(self) -> bool:
        return get_client("tokens").exists(key("ws-jti", self.jti)) == 1

    def present(self, token: str) -> Handshake:
        return handshake(ws_path(token))

    def refusal_line(self, reason: str) -> str:
        # Ids are known, and logged, only once the token has verified.
        verified = reason in {HandshakeRefusal.REPLAYED, HandshakeRefusal.UNAVAILABLE}
        user, tenant = self.alice_ids if verified else ("-", "-")
        return f"ws handshake refused reason={reason} user={user} tenant={tenant}"

    def assert_accepted(self, observed: Handshake) -> None:
        assert observed.connected is True
        assert observed.hello is not None
        assert (observed.hello["user"], observed.hello["tenant"]) == self.alice_ids
        assert security_lines(self.caplog, "ws handshake") == [
            "ws handshake accepted user={} tenant={}".format(*self.alice_ids)
        ]
        assert not self.marker_exists()

    def assert_refused(self, observed: Handshake, reason: str, token: str) -> None:
        assert (observed.connected, observed.code) == (False, 1008)
        assert security_lines(self.caplog, "ws handshake") == [
            self.refusal_line(reason)
        ]


# RFC 6750: the status, challenge and body of each kind of refusal.
API_REFUSALS: dict[str, tuple[int, str, dict[str, str]]] = {
    ApiRefusal.NO_TOKEN: (401, NO_TOKEN_CHALLENGE, {"error": "invalid_token"}),
    ApiRefusal.SCOPE: (403, SCOPE_CHALLENGE, {"error": "insufficient_scope"}),
}
INVALID_TOKEN = (401, INVALID_TOKEN_CHALLENGE, {"error": "invalid_token"})


class ApiSurface(Surface):
    """POST /internal/notifications/ for alice, the scope the token names."""

    name = "api"
    kind = tokens.SERVICE_TOKEN
    other_kind = tokens.WS_TOKEN
    other_kid = settings.DASHIFY_WS_TOKEN_KID
    secret = settings.DASHIFY_SERVICE_TOKEN_SECRET
    other_secret = settings.DASHIFY_WS_TOKEN_SECRET
    kid = settings.DASHIFY_SERVICE_TOKEN_KID
    max_lifetime = settings.SERVICE_TOKEN_MAX_LIFETIME

    @property
    def scope(self) -> str:
        return scopes.notification_create(
            tenant_id=self.alice.tenant_id, user_id=self.alice.pk
        )

    def issue(self) -> str:
        return issue_service_token(self.scope)

    def marker_exists(self) -> bool:
        return get_client("tokens").exists(key("svc-jti", self.jti)) == 1

    def present(self, token: str) -> ClientResponse:
        return post_notification(notification_body(self.alice), f"Bearer {token}")

    def before_presenting(self) -> None:
        self.notifications = Notification.objects.count()

    def assert_accepted(self, observed: ClientResponse) -> None:
        assert observed.status_code == 201, observed.content
        assert observed.json()["created"] is True
        assert Notification.objects.count() == self.notifications + 1
        assert not self.marker_exists()

    def assert_refused(self, observed: ClientResponse, reason: str, token: str) -> None:
        status, challenge, body = API_REFUSALS.get(reason, INVALID_TOKEN)
        assert observed.status_code == status
        assert observed["WWW-Authenticate"] == challenge
        assert observed.json() == body
        assert security_lines(self.caplog, "internal api") == [
            f"internal api refused reason={reason} path={NOTIFICATIONS}"
        ]
        assert Notification.objects.count() == self.notifications

        text = observed.content.decode()
        headers = "\n".join(f"{name}: {value}" for name, value in observed.items())
        assert [p for p in token_pieces(token) if p in text + headers] == []
        assert [value for value in claim_values(token) if value in text] == []
        assert [word for word in REFUSAL_WORDS if word in text + headers] == []


SURFACES: dict[str, type[Surface]] = {"ws": WebSocketSurface, "api": ApiSurface}


@pytest.fixture
def surface(request: pytest.FixtureRequest) -> Surface:
    """The surface named by the test's indirect ``surface`` parameter."""
    return SURFACES[request.param](request)


Case = tuple[str, Mutation, Expect]


def on_both(cases: list[Case]) -> list[Any]:
    """Parameters (surface, mutation, expect) for every case on each surface."""
    return [
        pytest.param(name, mutation, expect, id=f"{name}:{case}")
        for case, mutation, expect in cases
        for name in SURFACES
    ]


def on_each(cases: dict[str, list[Case]]) -> list[Any]:
    """Parameters for cases that exist on one surface only (its own claims)."""
    return [
        pytest.param(name, mutation, expect, id=f"{name}:{case}")
        for name, table in cases.items()
        for case, mutation, expect in table
    ]


# --- a stand-in key server --------------------------------------------------------


class Listener:
    """
    A TCP listener on 127.0.0.1 standing in for an attacker's key server
    (jku, x5u): it only counts who connects.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.peers: list[int] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/.well-known/jwks.json"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, (_, port) = self.sock.accept()
            except TimeoutError:
                continue
            self.peers.append(port)
            conn.close()

    def connections_so_far(self) -> int:
        """
        Count the connections received before now. A probe connection is
        queued behind any earlier one, so once the probe is seen every
        earlier connection has been counted.
        """
        with socket.create_connection(self.sock.getsockname(), timeout=1) as probe:
            port = probe.getsockname()[1]
            deadline = time.monotonic() + 2
            while port not in self.peers:
                assert time.monotonic() < deadline, "the listener is not accepting"
                time.sleep(0.005)
        earlier = self.peers.index(port)
        self.peers.remove(port)
        return earlier

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.stop()
