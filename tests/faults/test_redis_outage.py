"""
Redis going away and coming back, on a server of the test's own: every
Redis purpose (sessions, cache, tokens, channel layer) is pointed at it,
then it is stopped and started again on the same port.
"""

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import User
from tests.accounts.support import csrf_header, redis_settings_on, sign_in
from tests.conftest import PASSWORD, RedisServer, mint_token

Response = TypeVar("Response")

# Liveness bound, not a performance target: a request must fail fast
# instead of hanging on a dead connection.
PROMPTLY = 5.0


@pytest.fixture
def redis_server(private_redis: RedisServer) -> Iterator[RedisServer]:
    with redis_settings_on(private_redis.url):
        yield private_redis


def _timed(request: Callable[[], Response]) -> tuple[Response, float]:
    started = time.monotonic()
    response = request()
    return response, time.monotonic() - started


def _login_form(client: Client, user: User) -> dict[str, str]:
    return {
        "username": user.username,
        "password": PASSWORD,
        "csrfmiddlewaretoken": client.cookies[settings.CSRF_COOKIE_NAME].value,
    }


def test_the_dashboard_answers_503_while_redis_is_down(
    alice: User, redis_server: RedisServer
) -> None:
    client = sign_in(alice)
    redis_server.stop()

    response, seconds = _timed(lambda: client.get("/"))

    assert response.status_code == 503
    assert "Dashify is briefly unavailable" in response.content.decode()
    assert response["Retry-After"] == "5"
    assert seconds < PROMPTLY


def test_the_503_page_is_never_cached(alice: User, redis_server: RedisServer) -> None:
    client = sign_in(alice)
    redis_server.stop()

    response = client.get("/")

    assert response["Cache-Control"] == "no-store"


def test_login_answers_503_while_redis_is_down(
    alice: User, redis_server: RedisServer
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")
    redis_server.stop()

    response, seconds = _timed(
        lambda: client.post("/accounts/login/", _login_form(client, alice))
    )

    assert response.status_code == 503
    assert "unavailable" in response.content.decode()
    assert seconds < PROMPTLY


def test_minting_a_token_answers_503_json_while_redis_is_down(
    alice: User, redis_server: RedisServer
) -> None:
    client = sign_in(alice)
    redis_server.stop()

    response, seconds = _timed(
        lambda: client.post("/accounts/ws-token/", headers=csrf_header(client))
    )

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "unavailable"
    assert "token" not in response.json()
    assert seconds < PROMPTLY


def test_logout_answers_503_while_redis_is_down(
    alice: User, redis_server: RedisServer
) -> None:
    client = sign_in(alice)
    redis_server.stop()

    response, seconds = _timed(
        lambda: client.post("/accounts/logout/", headers=csrf_header(client))
    )

    assert response.status_code == 503
    assert seconds < PROMPTLY


def test_the_sessions_page_answers_503_while_redis_is_down(
    alice: User, redis_server: RedisServer
) -> None:
    client = sign_in(alice)
    redis_server.stop()

    response, seconds = _timed(lambda: client.get("/accounts/sessions/"))

    assert response.status_code == 503
    assert seconds < PROMPTLY


def test_signing_in_works_again_once_redis_is_back(
    alice: User, redis_server: RedisServer
) -> None:
    client = sign_in(alice)
    redis_server.stop()
    assert client.get("/").status_code == 503

    redis_server.start()

    assert sign_in(alice).get("/").status_code == 200


def test_minting_a_token_works_again_once_redis_is_back(
    alice: User, redis_server: RedisServer
) -> None:
    client = sign_in(alice)
    redis_server.stop()
    assert (
        client.post("/accounts/ws-token/", headers=csrf_header(client)).status_code
        == 503
    )

    redis_server.start()

    assert mint_token(sign_in(alice))


def test_sessions_from_before_the_outage_are_anonymous_once_redis_is_back(
    alice: User, redis_server: RedisServer
) -> None:
    # The private server keeps nothing across a restart, so the old
    # session is gone: the person is sent to sign in, not shown an error.
    client = sign_in(alice)
    redis_server.stop()
    redis_server.start()

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"
