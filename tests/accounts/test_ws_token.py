from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import Client
from jwt.utils import base64url_decode

from accounts.models import User
from tests.accounts.support import csrf_header, sign_in
from tests.conftest import mint_token, session_key_of


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(
        token,
        settings.DASHIFY_WS_TOKEN_SECRET,
        algorithms=["HS256"],
        audience="dashify:websocket",
    )


def test_minting_a_token_anonymously_answers_401_json(db: None) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")

    response = client.post("/accounts/ws-token/", headers=csrf_header(client))

    assert response.status_code == 401
    assert response.json() == {"error": "not_authenticated", "detail": "Sign in first."}


def test_minting_a_token_by_get_is_refused_with_405(alice: User) -> None:
    client = sign_in(alice)

    response = client.get("/accounts/ws-token/")

    assert response.status_code == 405


def test_minting_a_token_without_the_csrf_header_is_refused_with_403(
    alice: User,
) -> None:
    client = sign_in(alice)

    response = client.post("/accounts/ws-token/")

    assert response.status_code == 403
    assert b"token" not in response.content


def test_minting_a_token_answers_the_token_and_its_lifetime(alice: User) -> None:
    client = sign_in(alice)

    response = client.post("/accounts/ws-token/", headers=csrf_header(client))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"token", "expires_in"}
    assert response.json()["expires_in"] == 900


def test_a_minted_token_is_never_cached(alice: User) -> None:
    client = sign_in(alice)

    response = client.post("/accounts/ws-token/", headers=csrf_header(client))

    assert "no-store" in response["Cache-Control"]


def test_a_minted_token_carries_exactly_the_expected_claims(alice: User) -> None:
    client = sign_in(alice)

    claims = _claims(mint_token(client))

    assert set(claims) == {"sub", "tid", "sid", "jti", "iat", "nbf", "exp", "aud"}
    assert claims["sub"] == str(alice.pk)
    assert claims["tid"] == alice.tenant_id
    assert claims["aud"] == "dashify:websocket"
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] == claims["iat"] + 900


def test_a_minted_token_does_not_carry_the_session_key(alice: User) -> None:
    client = sign_in(alice)

    token = mint_token(client)

    assert _claims(token)["sid"] != session_key_of(client)
    assert session_key_of(client) not in base64url_decode(token.split(".")[1]).decode()


def test_a_minted_token_has_the_expected_header(alice: User) -> None:
    client = sign_in(alice)

    header = jwt.get_unverified_header(mint_token(client))

    assert header == {"alg": "HS256", "typ": "dashify-ws+jwt", "kid": "ws-1"}


def test_each_mint_gives_a_token_of_its_own(alice: User) -> None:
    client = sign_in(alice)

    first, second = (_claims(mint_token(client)) for _ in range(2))

    assert first["jti"] != second["jti"]
    assert first["sid"] == second["sid"]


def test_tokens_of_two_sessions_are_bound_to_different_sessions(alice: User) -> None:
    first = _claims(mint_token(sign_in(alice)))
    second = _claims(mint_token(sign_in(alice)))

    assert first["sid"] != second["sid"]


def test_a_token_is_not_signed_with_the_django_secret_key(alice: User) -> None:
    token = mint_token(sign_in(alice))

    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            token,
            settings.SECRET_KEY,
            algorithms=["HS256"],
            audience="dashify:websocket",
        )


def test_a_mint_from_a_foreign_origin_is_refused_without_cors_headers(
    alice: User,
) -> None:
    client = sign_in(alice)

    response = client.post(
        "/accounts/ws-token/",
        headers=csrf_header(client),
        HTTP_ORIGIN="https://evil.example",
    )

    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Credentials" not in response
    assert b"token" not in response.content


def test_a_mint_from_the_sites_own_origin_carries_no_cors_headers(
    alice: User,
) -> None:
    client = sign_in(alice)

    response = client.post(
        "/accounts/ws-token/",
        headers=csrf_header(client),
        HTTP_ORIGIN="http://testserver",
    )

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
