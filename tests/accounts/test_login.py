import secrets

from django.conf import settings
from django.test import Client

from accounts import selectors
from accounts.models import User
from tests.accounts.support import client_with_session_cookie
from tests.conftest import PASSWORD, session_exists, session_key_of, signed_in_client


def test_login_rotates_the_session_key_and_removes_the_old_one(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")
    client.session.save()  # an anonymous session exists before signing in
    anonymous_key = client.session.session_key
    assert anonymous_key is not None
    assert session_exists(anonymous_key)

    client.post(
        "/accounts/login/",
        {
            "username": "alice",
            "password": PASSWORD,
            "csrfmiddlewaretoken": client.cookies[settings.CSRF_COOKIE_NAME].value,
        },
    )

    new_key = session_key_of(client)
    assert new_key != anonymous_key
    assert session_exists(new_key)
    assert not session_exists(anonymous_key)


def test_the_session_cookie_alone_carries_the_sign_in(alice: User) -> None:
    session_key = session_key_of(signed_in_client(alice))

    response = client_with_session_cookie(session_key).get("/")

    assert response.status_code == 200


def test_a_failed_login_creates_no_session(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")

    response = client.post(
        "/accounts/login/",
        {
            "username": "alice",
            "password": "wrong-password",
            "csrfmiddlewaretoken": client.cookies[settings.CSRF_COOKIE_NAME].value,
        },
    )

    assert response.status_code == 200
    assert settings.SESSION_COOKIE_NAME not in client.cookies
    assert selectors.live_sessions(alice.pk) == []


def test_login_without_a_csrf_token_is_refused(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}
    )

    assert response.status_code == 403
    assert selectors.live_sessions(alice.pk) == []


def test_an_invented_session_id_is_not_stored(db: None) -> None:
    invented = secrets.token_hex(16)
    client = client_with_session_cookie(invented)

    client.get("/accounts/login/")
    client.get("/")

    assert not session_exists(invented)


def test_login_with_an_invented_session_id_gets_a_key_of_its_own(
    alice: User,
) -> None:
    invented = secrets.token_hex(16)
    client = client_with_session_cookie(invented)
    client.get("/accounts/login/")

    client.post(
        "/accounts/login/",
        {
            "username": "alice",
            "password": PASSWORD,
            "csrfmiddlewaretoken": client.cookies[settings.CSRF_COOKIE_NAME].value,
        },
    )

    assert session_key_of(client) != invented
    assert session_exists(session_key_of(client))
    assert not session_exists(invented)
    assert client_with_session_cookie(invented).get("/").status_code == 302
