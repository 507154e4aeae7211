"""
Failed sign-ins are limited per username and per address, on every sign-in
form (Dashify's and the admin's), however the username is spelled.
"""

from collections.abc import Callable
from http import HTTPStatus

import pytest
from django.conf import settings
from django.test import Client, override_settings

from accounts.models import User
from tests.conftest import PASSWORD

LIMIT = 3


def attempt(username: str, password: str, address: str = "10.0.0.1") -> int:
    client = Client(REMOTE_ADDR=address)
    response = client.post(
        "/accounts/login/", {"username": username, "password": password}
    )
    return response.status_code


def fail(times: int, username: str = "alice", address: str = "10.0.0.1") -> None:
    for _ in range(times):
        assert attempt(username, "wrong-password", address) == HTTPStatus.OK


@override_settings(DASHIFY_LOGIN_MAX_FAILURES=LIMIT)
def test_the_right_password_is_refused_once_a_username_failed_too_often(
    alice: User,
) -> None:
    fail(LIMIT, address="10.0.0.1")

    assert (
        attempt("alice", PASSWORD, address="10.0.0.2") == HTTPStatus.TOO_MANY_REQUESTS
    )


@override_settings(DASHIFY_LOGIN_MAX_FAILURES=LIMIT)
def test_an_address_that_failed_too_often_is_refused_for_other_usernames(
    alice: User, bob: User
) -> None:
    fail(LIMIT, username="alice", address="10.0.0.9")

    assert attempt("bob", PASSWORD, address="10.0.0.9") == HTTPStatus.TOO_MANY_REQUESTS
    assert attempt("bob", PASSWORD, address="10.0.0.10") == HTTPStatus.FOUND


@pytest.mark.parametrize("spelling", [" alice", "alice ", "ALICE", "ａlice"])
@override_settings(DASHIFY_LOGIN_MAX_FAILURES=LIMIT)
def test_another_spelling_of_a_throttled_username_is_throttled_too(
    spelling: str, alice: User
) -> None:
    fail(LIMIT, username="alice", address="10.0.0.3")

    assert (
        attempt(spelling, PASSWORD, address="10.0.0.4") == HTTPStatus.TOO_MANY_REQUESTS
    )


@override_settings(DASHIFY_LOGIN_MAX_FAILURES=LIMIT)
def test_the_admin_sign_in_counts_and_honours_the_same_limit(
    make_user: Callable[..., User],
) -> None:
    make_user("root", is_staff=True, is_superuser=True)
    client = Client(REMOTE_ADDR="10.0.0.5")
    for _ in range(LIMIT):
        response = client.post(
            "/admin/login/", {"username": "root", "password": "wrong-password"}
        )
        assert response.status_code == HTTPStatus.OK

    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD})

    assert response.status_code == HTTPStatus.OK  # the form again, not a redirect
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert attempt("root", PASSWORD, address="10.0.0.6") == HTTPStatus.TOO_MANY_REQUESTS


def test_a_signed_in_visit_with_next_pointing_at_the_login_page_is_redirected(
    alice: User,
) -> None:
    client = Client()
    client.force_login(alice)

    response = client.get("/accounts/login/?next=/accounts/login/")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/"
