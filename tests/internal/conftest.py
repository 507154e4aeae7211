"""
Helpers for calling the internal API through the Django test client: real
service tokens from worker.api, hand-made ones for the refusal cases, and
the security log lines the API writes.
"""

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client

from accounts import tokens
from accounts.models import User
from dashify.redis import get_client, key
from internal import scopes
from internal.auth import ApiRefusal
from realtime import services
from realtime.models import Board, Export

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as ClientResponse
else:
    ClientResponse = HttpResponse

SECURITY_LOGGER = "dashify.security"
NOTIFICATIONS = "/internal/notifications/"
SERVICE_SECRET = settings.DASHIFY_SERVICE_TOKEN_SECRET
SERVICE_TTL = settings.DASHIFY_SERVICE_TOKEN_TTL

# Every word the API could use to say why it refused: none may reach a client.
REFUSAL_REASONS = [*map(str, tokens.Refusal), *map(str, ApiRefusal)]


def api_client() -> Client:
    """A client like the worker's: no cookies, and CSRF checks enforced."""
    return Client(enforce_csrf_checks=True)


def post_notification(
    client: Client,
    body: dict[str, Any],
    *,
    authorization: str | None,
    idempotency_key: str | None = "reminder:1:1700000000",
) -> ClientResponse:
    headers: dict[str, Any] = {}
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    if idempotency_key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = idempotency_key
    return client.post(
        NOTIFICATIONS, json.dumps(body), content_type="application/json", **headers
    )


def post_export(
    client: Client,
    export_id: int,
    content: str,
    *,
    authorization: str | None,
    idempotency_key: str | None,
) -> ClientResponse:
    headers: dict[str, Any] = {}
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    if idempotency_key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = idempotency_key
    return client.post(
        f"/internal/exports/{export_id}/",
        content.encode(),
        content_type="text/csv; charset=utf-8",
        **headers,
    )


def notification_body(user: User, **changes: Any) -> dict[str, Any]:
    body = {
        "tenant": user.tenant_id,
        "user": user.pk,
        "text": "“Draft the Q3 report” is due 2030-01-01 09:00 UTC.",
        "link": "/",
    }
    body.update(changes)
    return body


def api_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == SECURITY_LOGGER and "internal api" in record.getMessage()
    ]


# --- hand-made service tokens -----------------------------------------------------
# PyJWT will not write most of the broken tokens these tests need, so they
# are assembled here from the compact serialisation.


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(
    header: object,
    payload: object,
    secret: str,
    digest: Callable[..., Any] = hashlib.sha256,
) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), digest).digest()
    return f"{head}.{body}.{b64url(mac)}"


def unsigned(header: object, payload: object) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{head}.{body}."


def service_header(**changes: Any) -> dict[str, Any]:
    header = {
        "alg": "HS256",
        "typ": tokens.SERVICE_TOKEN.typ,
        "kid": settings.DASHIFY_SERVICE_TOKEN_KID,
    }
    header.update(changes)
    return {name: value for name, value in header.items() if value is not None}


def service_claims(now: int, scope: str | None, **changes: Any) -> dict[str, Any]:
    """Claims the worker would write; a change to None removes the claim."""
    claims = {
        "iss": tokens.SERVICE_TOKEN.issuer,
        "scope": scope,
        "aud": tokens.SERVICE_TOKEN.audience,
        "jti": secrets.token_hex(16),
        "iat": now,
        "nbf": now,
        "exp": now + SERVICE_TTL,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def record_unspent(jti: str, scope: str) -> None:
    """Write the marker worker.api writes when it mints a token."""
    get_client("tokens").set(key("svc-jti", jti), scopes.marker(scope), ex=120)


def marker_exists(jti: str) -> bool:
    return get_client("tokens").exists(key("svc-jti", jti)) == 1


def claim_values(token: str) -> list[str]:
    """Every header and claim value of ``token`` that can be decoded."""
    values: list[str] = []
    for segment in token.split(".")[:2]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(segment + "==="))
        except ValueError:
            continue
        if isinstance(decoded, dict):
            values += [str(value) for value in decoded.values()]
    return values


# --- content ---------------------------------------------------------------------


@pytest.fixture
def acme_board(alice: User, bob: User) -> Board:
    services.ensure_demo_content(alice.tenant)
    return Board.objects.get(tenant=alice.tenant, name="Roadmap")


@pytest.fixture
def globex_board(carol: User) -> Board:
    services.ensure_demo_content(carol.tenant)
    return Board.objects.get(tenant=carol.tenant, name="Roadmap")


@pytest.fixture
def alice_export(alice: User, acme_board: Board) -> Export:
    return services.request_export(user=alice, board_id=acme_board.pk)


@pytest.fixture
def carol_export(carol: User, globex_board: Board) -> Export:
    return services.request_export(user=carol, board_id=globex_board.pk)
