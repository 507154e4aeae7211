"""
Session fixation: the attacker plants a session key of their choosing in
the victim's browser (through a cookie set from a sibling subdomain, an
XSS on another app of the same host, a shared machine) and waits for the
victim to sign in. The planted key must never carry the victim's identity,
and signing in must leave the victim's browser on a fresh key of its own.

tests/accounts/test_login.py covers a key the attacker merely invented;
here the planted keys are real sessions the attacker made: an anonymous
one, and one signed in to the attacker's own account.
"""

from collections.abc import Callable
from http import HTTPStatus

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.test import Client

from accounts.models import User
from accounts.sessions import SessionStore
from tests.conftest import (
    PASSWORD,
    session_exists,
    session_key_of,
    signed_in_client,
)

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


def _anonymous_session(attacker: User) -> str:
    store = SessionStore()
    store["planted"] = True
    store.create()
    assert store.session_key is not None
    return store.session_key


def _attackers_signed_in_session(attacker: User) -> str:
    return session_key_of(signed_in_client(attacker))


# (case id, how the attacker obtains the key they plant)
PLANTED_KEYS: list[tuple[str, Callable[[User], str]]] = [
    ("anonymous-session", _anonymous_session),
    ("attackers-signed-in-session", _attackers_signed_in_session),
]

planted_keys = pytest.mark.parametrize(
    "make_key", [pytest.param(make, id=case) for case, make in PLANTED_KEYS]
)


def _user_id_in(session_key: str) -> str | None:
    return SessionStore(session_key=session_key).load().get(SESSION_KEY)


def _browser_with(session_key: str) -> Client:
    """A browser holding a CSRF cookie of its own and the given session key."""
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    return client


def _victim_signs_in(planted: str, victim: User) -> Client:
    # The victim opened the login page before the key was planted (or
    # kept the CSRF cookie from an earlier visit): a page that sees a
    # signed-in key would redirect instead of showing the form.
    browser = _browser_with(planted)
    response = browser.post(
        "/accounts/login/",
        {
            "username": victim.username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": browser.cookies[settings.CSRF_COOKIE_NAME].value,
        },
    )
    assert response.status_code == HTTPStatus.FOUND, response.content
    return browser


@planted_keys
def test_the_planted_key_never_carries_the_victims_identity(
    make_key: Callable[[User], str], alice: User, carol: User
) -> None:
    planted = make_key(carol)

    _victim_signs_in(planted, alice)

    assert _user_id_in(planted) != str(alice.pk)


@planted_keys
def test_signing_in_leaves_the_victim_on_a_fresh_key_of_their_own(
    make_key: Callable[[User], str], alice: User, carol: User
) -> None:
    planted = make_key(carol)

    victim = _victim_signs_in(planted, alice)

    assert session_key_of(victim) != planted
    assert _user_id_in(session_key_of(victim)) == str(alice.pk)


def test_a_planted_anonymous_session_is_deleted_when_the_victim_signs_in(
    alice: User, carol: User
) -> None:
    planted = _anonymous_session(carol)
    assert session_exists(planted)

    _victim_signs_in(planted, alice)

    assert not session_exists(planted)


def test_the_planted_anonymous_key_shows_the_attacker_no_page_of_the_victims(
    alice: User, carol: User
) -> None:
    planted = _anonymous_session(carol)
    _victim_signs_in(planted, alice)

    response = _browser_with(planted).get("/")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/accounts/login/?next=/"


def test_the_planted_anonymous_key_mints_the_attacker_no_token(
    alice: User, carol: User
) -> None:
    planted = _anonymous_session(carol)
    _victim_signs_in(planted, alice)
    attacker = _browser_with(planted)

    response = attacker.post(
        "/accounts/ws-token/",
        headers={"X-CSRFToken": attacker.cookies[settings.CSRF_COOKIE_NAME].value},
    )

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json() == {"error": "not_authenticated", "detail": "Sign in first."}
