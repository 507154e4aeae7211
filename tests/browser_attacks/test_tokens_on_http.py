"""
Tokens are credentials for one door each: a WebSocket token for the socket
handshake, a service token for the internal API. Presented to an HTTP page
or the admin, in whatever place a client might put one, neither signs
anybody in, and neither is spent by the attempt.
"""

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from django.conf import settings
from django.test import Client

from accounts.models import User
from dashify.redis import get_client, key
from internal import scopes
from tests.conftest import mint_token, signed_in_client
from worker.api import issue_service_token

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


@dataclass
class Tokens:
    ws: str
    service: str


@pytest.fixture
def tokens(alice: User) -> Tokens:
    return Tokens(
        ws=mint_token(signed_in_client(alice)),
        service=issue_service_token(
            scopes.notification_create(tenant_id=alice.tenant_id, user_id=alice.pk)
        ),
    )


TOKEN_KINDS: dict[str, Callable[[Tokens], str]] = {
    "ws-token": lambda t: t.ws,
    "service-token": lambda t: t.service,
}


def _anonymous_browser() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")  # a CSRF cookie, as any visitor has
    return client


def _present(carrier: str, method: str, path: str, token: str) -> "TestResponse":
    """Send ``method path`` with ``token`` carried as ``carrier`` says."""
    client = _anonymous_browser()
    headers = {"X-CSRFToken": client.cookies[settings.CSRF_COOKIE_NAME].value}
    if carrier == "bearer":
        headers["Authorization"] = f"Bearer {token}"
    elif carrier == "query":
        path = f"{path}?token={token}"
    elif carrier == "token-cookie":
        client.cookies["token"] = token
    elif carrier == "session-cookie":
        client.cookies[settings.SESSION_COOKIE_NAME] = token
    send = client.get if method == "GET" else client.post
    return send(path, headers=headers)


CARRIERS = ["bearer", "query", "token-cookie", "session-cookie"]

# (method, path, where an anonymous caller is sent: the login page for
# pages, None for the script endpoint that answers 401 instead)
PAGES = [
    ("GET", "/", "/accounts/login/"),
    ("GET", "/accounts/sessions/", "/accounts/login/"),
    ("GET", "/admin/", "/admin/login/"),
    ("POST", "/accounts/ws-token/", None),
]


@pytest.mark.parametrize(
    ("method", "path", "login_page"),
    [pytest.param(m, p, login, id=f"{m}-{p}") for m, p, login in PAGES],
)
@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize(
    "kind", [pytest.param(k, id=name) for name, k in TOKEN_KINDS.items()]
)
def test_a_token_presented_to_a_page_signs_nobody_in(
    kind: Callable[[Tokens], str],
    carrier: str,
    method: str,
    path: str,
    login_page: str | None,
    tokens: Tokens,
) -> None:
    token = kind(tokens)

    response = _present(carrier, method, path, token)

    if login_page is None:
        assert response.status_code == HTTPStatus.UNAUTHORIZED
        assert response.json() == {
            "error": "not_authenticated",
            "detail": "Sign in first.",
        }
    else:
        assert response.status_code == HTTPStatus.FOUND
        location = urlsplit(response["Location"])
        full_path = f"{path}?token={token}" if carrier == "query" else path
        assert (location.path, parse_qs(location.query)) == (
            login_page,
            {"next": [full_path]},
        )


def test_presenting_tokens_to_pages_spends_neither(alice: User, tokens: Tokens) -> None:
    for kind in TOKEN_KINDS.values():
        for carrier in CARRIERS:
            for method, path, _ in PAGES:
                _present(carrier, method, path, kind(tokens))

    # Both kinds are single-use and recorded unspent in Redis when minted.
    unspent = {
        "ws-token": _marker_present(key("ws-jti", _jti(tokens.ws))),
        "service-token": _marker_present(key("svc-jti", _jti(tokens.service))),
    }
    assert unspent == {"ws-token": True, "service-token": True}


def _jti(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def _marker_present(name: str) -> bool:
    return get_client("tokens").exists(name) == 1
