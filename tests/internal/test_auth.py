"""
The internal API admits only a single-use service token, for exactly the
operation and resource of the request, and refuses everything else the
same way: RFC 6750 challenge, a fixed body, nothing changed, and the reason
only in the security log.
"""

import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from accounts.models import User
from dashify.asgi import application
from internal import scopes
from realtime.models import Export, Notification
from tests.conftest import PASSWORD, mint_token, signed_in_client
from tests.internal.conftest import (
    NOTIFICATIONS,
    REFUSAL_REASONS,
    SECURITY_LOGGER,
    SERVICE_SECRET,
    ClientResponse,
    api_client,
    api_log_lines,
    claim_values,
    notification_body,
    post_export,
    post_notification,
    record_unspent,
    service_claims,
    service_header,
    sign,
    unsigned,
)
from worker.api import issue_service_token

pytestmark = pytest.mark.django_db

LEEWAY = settings.DASHIFY_WS_TOKEN_LEEWAY
MAX_LIFETIME = settings.SERVICE_TOKEN_MAX_LIFETIME

NO_TOKEN_CHALLENGE = 'Bearer realm="dashify-internal"'
INVALID_TOKEN_CHALLENGE = 'Bearer realm="dashify-internal", error="invalid_token"'
SCOPE_CHALLENGE = 'Bearer realm="dashify-internal", error="insufficient_scope"'
INVALID_TOKEN_BODY = {"error": "invalid_token"}
SCOPE_BODY = {"error": "insufficient_scope"}


@dataclass
class Forge:
    """What a token builder may use: the clock, the people, a real WS token."""

    now: int
    alice: User
    bob: User
    carol: User
    ws_token: str

    @property
    def scope(self) -> str:
        """The scope a notification for alice needs."""
        return scopes.notification_create(
            tenant_id=self.alice.tenant_id, user_id=self.alice.pk
        )


Builder = Callable[[Forge], str | None]


def forged(
    secret: str = SERVICE_SECRET,
    digest: Callable[..., Any] = hashlib.sha256,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> Callable[[Forge], str]:
    """
    A signed service token with the given changes, recorded as unspent, so
    that only those changes can explain a refusal.
    """

    def build(f: Forge) -> str:
        changes = dict(claims)
        payload = service_claims(f.now, changes.pop("scope", f.scope), **changes)
        if "jti" in payload:
            record_unspent(payload["jti"], str(payload.get("scope", "")))
        return "Bearer " + sign(
            service_header(**(header or {})), payload, secret, digest
        )

    return build


def times(iat: int, nbf: int, exp: int) -> Builder:
    """A token with times relative to now, otherwise right."""
    return lambda f: forged(iat=f.now + iat, nbf=f.now + nbf, exp=f.now + exp)(f)


def none_alg(spelling: str, signed: bool) -> Builder:
    def build(f: Forge) -> str:
        head = service_header(alg=spelling)
        payload = service_claims(f.now, f.scope)
        record_unspent(payload["jti"], payload["scope"])
        if signed:
            return "Bearer " + sign(head, payload, SERVICE_SECRET)
        return "Bearer " + unsigned(head, payload)

    return build


def with_scope(scope_of: Callable[[Forge], str]) -> Builder:
    """A right token in every respect but its scope."""

    def build(f: Forge) -> str:
        payload = service_claims(f.now, scope_of(f))
        record_unspent(payload["jti"], payload["scope"])
        return "Bearer " + sign(service_header(), payload, SERVICE_SECRET)

    return build


def never_recorded(f: Forge) -> str:
    return "Bearer " + sign(
        service_header(), service_claims(f.now, f.scope), SERVICE_SECRET
    )


def basic_credentials(f: Forge) -> str:
    return "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()


def right_token_after_basic(f: Forge) -> str:
    return "Basic " + forged()(f).removeprefix("Bearer ")


RANDOM_SECRET = secrets.token_urlsafe(48)

# (id, Authorization header builder, status, WWW-Authenticate, logged reason)
REFUSALS: list[tuple[str, Builder, int, str, str]] = [
    ("no-authorization", lambda f: None, 401, NO_TOKEN_CHALLENGE, "no-token"),
    ("empty-authorization", lambda f: "", 401, NO_TOKEN_CHALLENGE, "no-token"),
    ("basic-scheme", basic_credentials, 401, INVALID_TOKEN_CHALLENGE, "not-bearer"),
    (
        "right-token-under-basic",
        right_token_after_basic,
        401,
        INVALID_TOKEN_CHALLENGE,
        "not-bearer",
    ),
    ("bearer-nothing", lambda f: "Bearer ", 401, INVALID_TOKEN_CHALLENGE, "malformed"),
    (
        "bearer-garbage",
        lambda f: "Bearer not-a-token",
        401,
        INVALID_TOKEN_CHALLENGE,
        "malformed",
    ),
    (
        "two-spaces-before-token",
        lambda f: "Bearer  " + forged()(f).removeprefix("Bearer "),
        401,
        INVALID_TOKEN_CHALLENGE,
        "malformed",
    ),
    (
        "truncated-signature",
        lambda f: forged()(f)[:-1],
        401,
        INVALID_TOKEN_CHALLENGE,
        "malformed",
    ),
    (
        "websocket-secret",
        forged(secret=settings.DASHIFY_WS_TOKEN_SECRET),
        401,
        INVALID_TOKEN_CHALLENGE,
        "bad-signature",
    ),
    (
        "django-secret-key",
        forged(secret=settings.SECRET_KEY),
        401,
        INVALID_TOKEN_CHALLENGE,
        "bad-signature",
    ),
    (
        "random-secret",
        forged(secret=RANDOM_SECRET),
        401,
        INVALID_TOKEN_CHALLENGE,
        "bad-signature",
    ),
    (
        "empty-secret",
        forged(secret=""),
        401,
        INVALID_TOKEN_CHALLENGE,
        "bad-signature",
    ),
    ("alg-none", none_alg("none", False), 401, INVALID_TOKEN_CHALLENGE, "malformed"),
    ("alg-None", none_alg("None", False), 401, INVALID_TOKEN_CHALLENGE, "malformed"),
    ("alg-NONE", none_alg("NONE", False), 401, INVALID_TOKEN_CHALLENGE, "malformed"),
    ("alg-nOnE", none_alg("nOnE", False), 401, INVALID_TOKEN_CHALLENGE, "malformed"),
    (
        "alg-none-with-signature",
        none_alg("none", True),
        401,
        INVALID_TOKEN_CHALLENGE,
        "malformed",
    ),
    (
        "alg-None-with-signature",
        none_alg("None", True),
        401,
        INVALID_TOKEN_CHALLENGE,
        "malformed",
    ),
    (
        "hs384-right-secret",
        forged(digest=hashlib.sha384, header={"alg": "HS384"}),
        401,
        INVALID_TOKEN_CHALLENGE,
        "malformed",
    ),
    (
        "hs512-right-secret",
        forged(digest=hashlib.sha512, header={"alg": "HS512"}),
        401,
        INVALID_TOKEN_CHALLENGE,
        "malformed",
    ),
    (
        "expired",
        times(iat=-MAX_LIFETIME - 60, nbf=-MAX_LIFETIME - 60, exp=-LEEWAY - 1),
        401,
        INVALID_TOKEN_CHALLENGE,
        "expired",
    ),
    (
        "lifetime-one-second-over-maximum",
        times(iat=0, nbf=0, exp=MAX_LIFETIME + 1),
        401,
        INVALID_TOKEN_CHALLENGE,
        "lifetime-too-long",
    ),
    (
        "lifetime-one-day",
        times(iat=0, nbf=0, exp=86_400),
        401,
        INVALID_TOKEN_CHALLENGE,
        "lifetime-too-long",
    ),
    (
        "not-yet-valid",
        times(iat=0, nbf=LEEWAY + 30, exp=MAX_LIFETIME),
        401,
        INVALID_TOKEN_CHALLENGE,
        "not-yet-valid",
    ),
    (
        "websocket-audience",
        forged(aud="dashify:websocket"),
        401,
        INVALID_TOKEN_CHALLENGE,
        "wrong-audience",
    ),
    (
        "audience-as-list",
        forged(aud=["dashify:internal-api"]),
        401,
        INVALID_TOKEN_CHALLENGE,
        "wrong-audience",
    ),
    (
        "no-audience",
        forged(aud=None),
        401,
        INVALID_TOKEN_CHALLENGE,
        "wrong-audience",
    ),
    (
        "real-websocket-token",
        lambda f: "Bearer " + f.ws_token,
        401,
        INVALID_TOKEN_CHALLENGE,
        "bad-signature",
    ),
    (
        "websocket-typ",
        forged(header={"typ": "dashify-ws+jwt"}),
        401,
        INVALID_TOKEN_CHALLENGE,
        "bad-header",
    ),
    (
        "typ-jwt",
        forged(header={"typ": "JWT"}),
        401,
        INVALID_TOKEN_CHALLENGE,
        "bad-header",
    ),
    (
        "no-typ",
        forged(header={"typ": None}),
        401,
        INVALID_TOKEN_CHALLENGE,
        "bad-header",
    ),
    (
        "web-issuer",
        forged(iss="dashify-web"),
        401,
        INVALID_TOKEN_CHALLENGE,
        "wrong-issuer",
    ),
    ("no-issuer", forged(iss=None), 401, INVALID_TOKEN_CHALLENGE, "bad-claims"),
    ("no-scope", forged(scope=None), 401, INVALID_TOKEN_CHALLENGE, "bad-claims"),
    ("no-jti", forged(jti=None), 401, INVALID_TOKEN_CHALLENGE, "bad-claims"),
    (
        "never-recorded-in-redis",
        never_recorded,
        401,
        INVALID_TOKEN_CHALLENGE,
        "replayed",
    ),
    (
        "scope-of-another-operation",
        with_scope(
            lambda f: scopes.export_complete(tenant_id=f.alice.tenant_id, export_id=1)
        ),
        403,
        SCOPE_CHALLENGE,
        "insufficient-scope",
    ),
    (
        "scope-of-another-tenant",
        with_scope(
            lambda f: scopes.notification_create(
                tenant_id=f.carol.tenant_id, user_id=f.alice.pk
            )
        ),
        403,
        SCOPE_CHALLENGE,
        "insufficient-scope",
    ),
    (
        "scope-of-another-user",
        with_scope(
            lambda f: scopes.notification_create(
                tenant_id=f.alice.tenant_id, user_id=f.bob.pk
            )
        ),
        403,
        SCOPE_CHALLENGE,
        "insufficient-scope",
    ),
    (
        "scope-with-a-suffix",
        with_scope(lambda f: f.scope + ":admin"),
        403,
        SCOPE_CHALLENGE,
        "insufficient-scope",
    ),
    (
        "scope-wildcard",
        with_scope(lambda f: "notification.create:*"),
        403,
        SCOPE_CHALLENGE,
        "insufficient-scope",
    ),
]


def assert_refused(
    response: ClientResponse,
    status: int,
    challenge: str,
    secrets_in_request: list[str],
) -> None:
    """The refusal is the fixed one for its status and gives nothing away."""
    assert response.status_code == status
    assert response["WWW-Authenticate"] == challenge
    assert response.json() == (SCOPE_BODY if status == 403 else INVALID_TOKEN_BODY)
    body = response.content.decode()
    leaked = [value for value in secrets_in_request if value and value in body]
    assert leaked == []
    assert [reason for reason in REFUSAL_REASONS if reason in body] == []


@pytest.mark.parametrize(
    ("build", "status", "challenge", "reason"),
    [
        pytest.param(build, status, challenge, reason, id=name)
        for name, build, status, challenge, reason in REFUSALS
    ],
)
def test_the_api_refuses_a_request_without_the_right_service_token(
    build: Builder,
    status: int,
    challenge: str,
    reason: str,
    alice: User,
    bob: User,
    carol: User,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ws_token = mint_token(signed_in_client(alice))
    authorization = build(
        Forge(
            now=int(time.time()), alice=alice, bob=bob, carol=carol, ws_token=ws_token
        )
    )
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    response = post_notification(
        api_client(), notification_body(alice), authorization=authorization
    )

    token = (authorization or "").partition(" ")[2]
    assert_refused(response, status, challenge, [token, *claim_values(token)])
    assert Notification.objects.count() == 0
    assert api_log_lines(caplog) == [
        f"internal api refused reason={reason} path={NOTIFICATIONS}"
    ]


def test_the_api_refuses_a_service_token_used_a_second_time(
    alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    token = issue_service_token(
        scopes.notification_create(tenant_id=alice.tenant_id, user_id=alice.pk)
    )
    first = post_notification(
        api_client(),
        notification_body(alice),
        authorization=f"Bearer {token}",
        idempotency_key="first",
    )
    assert first.status_code == 201
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    replay = post_notification(
        api_client(),
        notification_body(alice, text="Replayed"),
        authorization=f"Bearer {token}",
        idempotency_key="second",
    )

    assert_refused(replay, 401, INVALID_TOKEN_CHALLENGE, [token, *claim_values(token)])
    assert list(Notification.objects.values_list("idempotency_key", flat=True)) == [
        "first"
    ]
    assert api_log_lines(caplog) == [
        f"internal api refused reason=replayed path={NOTIFICATIONS}"
    ]


def test_the_api_ignores_an_admin_session_cookie_without_a_token(
    make_user: Callable[..., User], alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    admin = signed_in_client(
        make_user("admin", "acme", is_staff=True, is_superuser=True)
    )
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    response = post_notification(
        admin, notification_body(alice), authorization=None, idempotency_key="admin"
    )

    session_cookie = admin.cookies[settings.SESSION_COOKIE_NAME].value
    assert_refused(response, 401, NO_TOKEN_CHALLENGE, [session_cookie])
    assert Notification.objects.count() == 0
    assert api_log_lines(caplog) == [
        f"internal api refused reason=no-token path={NOTIFICATIONS}"
    ]


def test_the_api_refuses_a_notification_token_at_the_export_endpoint(
    alice: User, alice_export: Export, caplog: pytest.LogCaptureFixture
) -> None:
    token = issue_service_token(
        scopes.notification_create(tenant_id=alice.tenant_id, user_id=alice.pk)
    )
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)

    response = post_export(
        api_client(),
        alice_export.pk,
        "card,title\n",
        authorization=f"Bearer {token}",
        idempotency_key=f"export:{alice_export.pk}",
    )

    assert_refused(response, 403, SCOPE_CHALLENGE, [token, *claim_values(token)])
    alice_export.refresh_from_db()
    assert alice_export.status == Export.Status.PENDING
    assert alice_export.content == ""
    assert Notification.objects.count() == 0


def test_the_api_refuses_one_tenants_export_token_for_another_tenants_export(
    alice: User,
    alice_export: Export,
    carol_export: Export,
) -> None:
    token = issue_service_token(
        scopes.export_complete(tenant_id=alice.tenant_id, export_id=alice_export.pk)
    )

    response = post_export(
        api_client(),
        carol_export.pk,
        "card,title\n",
        authorization=f"Bearer {token}",
        idempotency_key=f"export:{carol_export.pk}",
    )

    assert_refused(response, 403, SCOPE_CHALLENGE, [token, *claim_values(token)])
    carol_export.refresh_from_db()
    assert carol_export.status == Export.Status.PENDING
    assert Notification.objects.count() == 0


@pytest.mark.django_db(transaction=True)
async def test_the_websocket_handshake_refuses_a_service_token(
    alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    token = await sync_to_async(issue_service_token)(
        scopes.notification_create(tenant_id=alice.tenant_id, user_id=alice.pk)
    )
    caplog.set_level(logging.INFO, logger=SECURITY_LOGGER)
    origin = settings.DASHIFY_ALLOWED_ORIGINS[0].encode()

    socket = WebsocketCommunicator(
        application, f"/ws/?token={token}", headers=[(b"origin", origin)]
    )
    try:
        connected, code = await socket.connect()
    finally:
        await socket.disconnect()

    assert (connected, code) == (False, 1008)
    assert [
        record.getMessage()
        for record in caplog.records
        if record.name == SECURITY_LOGGER and "ws handshake" in record.getMessage()
    ] == ["ws handshake refused reason=bad-signature user=- tenant=-"]
