"""
Clickjacking: a foreign page that frames Dashify could trick a person into
clicking "Sign out everywhere" or "Export" through a transparent overlay.
Every page a person can click on forbids framing outright.
"""

from collections.abc import Callable

import pytest
from django.test import Client

from accounts.models import User
from tests.conftest import signed_in_client

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

# (who asks, path): the pages with buttons, signed in and not.
FRAMED_PAGES = [
    ("visitor", "/accounts/login/"),
    ("signed-in", "/"),
    ("signed-in", "/accounts/sessions/"),
    ("signed-in", "/accounts/password/"),
    ("staff", "/admin/"),
    ("visitor", "/admin/login/"),
]


@pytest.mark.parametrize(
    ("who", "path"), [pytest.param(w, p, id=f"{w}-{p}") for w, p in FRAMED_PAGES]
)
def test_a_page_forbids_being_framed(
    who: str, path: str, alice: User, make_user: Callable[..., User]
) -> None:
    if who == "visitor":
        client = Client()
    elif who == "staff":
        client = signed_in_client(make_user("root", is_staff=True, is_superuser=True))
    else:
        client = signed_in_client(alice)

    response = client.get(path)

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
