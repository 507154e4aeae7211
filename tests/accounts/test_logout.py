from django.test import Client

from accounts import selectors
from accounts.models import User
from tests.accounts.support import client_with_session_cookie, csrf_header
from tests.conftest import (
    session_exists,
    session_key_of,
    signed_in_client,
)


def test_logout_deletes_the_session_in_redis(alice: User) -> None:
    client = signed_in_client(alice)
    session_key = session_key_of(client)

    response = client.post("/accounts/logout/", headers=csrf_header(client))

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert not session_exists(session_key)


def test_logout_removes_the_session_from_the_sessions_list(alice: User) -> None:
    client = signed_in_client(alice)

    client.post("/accounts/logout/", headers=csrf_header(client))

    assert selectors.live_sessions(alice.pk) == []


def test_the_old_cookie_is_anonymous_after_logout(alice: User) -> None:
    client = signed_in_client(alice)
    session_key = session_key_of(client)
    client.post("/accounts/logout/", headers=csrf_header(client))

    response = client_with_session_cookie(session_key).get("/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_logout_by_get_is_refused_with_405(alice: User) -> None:
    client = signed_in_client(alice)

    response = client.get("/accounts/logout/")

    assert response.status_code == 405
    assert session_exists(session_key_of(client))


def test_logout_without_a_csrf_token_is_refused_and_keeps_the_session(
    alice: User,
) -> None:
    client = signed_in_client(alice)

    response = client.post("/accounts/logout/")

    assert response.status_code == 403
    assert session_exists(session_key_of(client))
    assert client.get("/").status_code == 200


def test_logout_of_an_anonymous_visitor_redirects_to_login(db: None) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")

    response = client.post("/accounts/logout/", headers=csrf_header(client))

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
