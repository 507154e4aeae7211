from datetime import UTC, datetime

from django.test import Client

from accounts.models import User
from accounts.services import session_binding
from tests.accounts.support import (
    CHROME_ON_LINUX,
    FIREFOX_ON_WINDOWS,
    csrf_token,
    session_rows,
    sign_in,
)
from tests.conftest import session_exists, session_key_of


def _shown_minutes(before: datetime, after: datetime) -> set[str]:
    # The page shows minutes; accept either side of a minute boundary.
    return {f"{moment:%Y-%m-%d %H:%M} UTC" for moment in (before, after)}


def test_the_sessions_page_names_the_device_from_the_user_agent(alice: User) -> None:
    client = sign_in(alice, HTTP_USER_AGENT=CHROME_ON_LINUX)

    rows = session_rows(client.get("/accounts/sessions/"))

    assert [row.device for row in rows] == ["Chrome on Linux this device"]


def test_the_sessions_page_shows_the_ip_address_of_each_session(alice: User) -> None:
    client = sign_in(alice, REMOTE_ADDR="203.0.113.7")
    sign_in(alice, REMOTE_ADDR="198.51.100.20")

    rows = session_rows(client.get("/accounts/sessions/"))

    assert [row.ip_address for row in rows] == ["203.0.113.7", "198.51.100.20"]


def test_the_sessions_page_shows_when_the_session_signed_in(alice: User) -> None:
    before = datetime.now(UTC)
    client = sign_in(alice)
    after = datetime.now(UTC)

    rows = session_rows(client.get("/accounts/sessions/"))

    assert rows[0].signed_in in _shown_minutes(before, after)


def test_the_sessions_page_shows_when_the_session_was_last_seen(alice: User) -> None:
    client = sign_in(alice)

    before = datetime.now(UTC)
    client.get("/")
    after = datetime.now(UTC)

    rows = session_rows(client.get("/accounts/sessions/"))

    assert rows[0].last_seen in _shown_minutes(before, after)


def test_the_sessions_page_marks_only_this_device(alice: User) -> None:
    sign_in(alice, HTTP_USER_AGENT=FIREFOX_ON_WINDOWS)
    client = sign_in(alice, HTTP_USER_AGENT=CHROME_ON_LINUX)

    rows = session_rows(client.get("/accounts/sessions/"))

    assert [(row.device, row.is_marked_current) for row in rows] == [
        ("Chrome on Linux this device", True),
        ("Firefox on Windows", False),
    ]


def test_the_sessions_page_offers_no_revoke_button_for_this_device(
    alice: User,
) -> None:
    other = sign_in(alice)
    client = sign_in(alice)

    rows = session_rows(client.get("/accounts/sessions/"))

    assert [row.handle for row in rows] == [
        None,
        session_binding(session_key_of(other)),
    ]


def test_the_sessions_page_never_shows_a_session_key(alice: User) -> None:
    other = sign_in(alice)
    client = sign_in(alice)

    page = client.get("/accounts/sessions/").content.decode()

    assert session_key_of(other) not in page
    assert session_key_of(client) not in page


def test_the_sessions_page_lists_only_the_signed_in_persons_sessions(
    alice: User, bob: User
) -> None:
    sign_in(bob, REMOTE_ADDR="198.51.100.20")
    client = sign_in(alice, REMOTE_ADDR="203.0.113.7")

    rows = session_rows(client.get("/accounts/sessions/"))

    assert [row.ip_address for row in rows] == ["203.0.113.7"]


def test_the_sessions_page_requires_signing_in(db: None) -> None:
    response = Client().get("/accounts/sessions/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/sessions/"


# --- revoking from the sessions page ---------------------------------------------


def test_revoking_one_session_ends_it(alice: User) -> None:
    other = sign_in(alice)
    client = sign_in(alice)
    handle = session_rows(client.get("/accounts/sessions/"))[1].handle

    response = client.post(
        "/accounts/sessions/",
        {"session": handle, "csrfmiddlewaretoken": csrf_token(client)},
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/sessions/"
    assert not session_exists(session_key_of(other))
    assert other.get("/").status_code == 302


def test_revoking_one_session_keeps_the_others(alice: User) -> None:
    first = sign_in(alice)
    second = sign_in(alice)
    client = sign_in(alice)

    client.post(
        "/accounts/sessions/",
        {
            "session": session_binding(session_key_of(first)),
            "csrfmiddlewaretoken": csrf_token(client),
        },
    )

    assert session_exists(session_key_of(second))
    assert session_exists(session_key_of(client))
    assert second.get("/").status_code == 200


def test_revoking_one_session_says_so(alice: User) -> None:
    other = sign_in(alice)
    client = sign_in(alice)

    response = client.post(
        "/accounts/sessions/",
        {
            "session": session_binding(session_key_of(other)),
            "csrfmiddlewaretoken": csrf_token(client),
        },
        follow=True,
    )

    assert "Session signed out." in response.content.decode()
    assert len(session_rows(response)) == 1


def test_revoking_this_device_from_the_sessions_page_is_refused(alice: User) -> None:
    client = sign_in(alice)

    response = client.post(
        "/accounts/sessions/",
        {
            "session": session_binding(session_key_of(client)),
            "csrfmiddlewaretoken": csrf_token(client),
        },
        follow=True,
    )

    assert "Use “Sign out” to end this session." in response.content.decode()
    assert session_exists(session_key_of(client))


def test_revoking_all_other_sessions_ends_them_and_keeps_this_one(
    alice: User,
) -> None:
    others = [sign_in(alice), sign_in(alice)]
    client = sign_in(alice)

    response = client.post(
        "/accounts/sessions/",
        {"revoke_others": "1", "csrfmiddlewaretoken": csrf_token(client)},
        follow=True,
    )

    assert "Signed out 2 other session(s)." in response.content.decode()
    assert [session_exists(session_key_of(other)) for other in others] == [False, False]
    assert [other.get("/").status_code for other in others] == [302, 302]
    assert session_exists(session_key_of(client))
    assert client.get("/").status_code == 200


def test_revoking_without_a_csrf_token_is_refused(alice: User) -> None:
    other = sign_in(alice)
    client = sign_in(alice)

    response = client.post("/accounts/sessions/", {"revoke_others": "1"})

    assert response.status_code == 403
    assert session_exists(session_key_of(other))


def test_a_handle_of_another_persons_session_revokes_nothing(
    alice: User, bob: User
) -> None:
    victim = sign_in(alice)
    attacker = sign_in(bob)

    response = attacker.post(
        "/accounts/sessions/",
        {
            "session": session_binding(session_key_of(victim)),
            "csrfmiddlewaretoken": csrf_token(attacker),
        },
        follow=True,
    )

    assert "That session had already ended." in response.content.decode()
    assert session_exists(session_key_of(victim))
    assert victim.get("/").status_code == 200


def test_a_session_key_in_place_of_a_handle_revokes_nothing(alice: User) -> None:
    other = sign_in(alice)
    client = sign_in(alice)

    client.post(
        "/accounts/sessions/",
        {"session": session_key_of(other), "csrfmiddlewaretoken": csrf_token(client)},
    )

    assert session_exists(session_key_of(other))
