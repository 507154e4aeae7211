from collections.abc import Callable

from accounts.models import User
from accounts.services import session_binding
from tests.accounts.support import (
    CHROME_ON_LINUX,
    csrf_token,
    session_rows,
    sign_in,
)
from tests.conftest import session_exists, session_key_of


def _sessions_url(user: User) -> str:
    return f"/admin/accounts/user/{user.pk}/sessions/"


def test_the_admin_sessions_page_lists_the_users_sessions(
    alice: User, superuser: User
) -> None:
    sign_in(alice, HTTP_USER_AGENT=CHROME_ON_LINUX, REMOTE_ADDR="203.0.113.7")
    admin = sign_in(superuser)

    rows = session_rows(admin.get(_sessions_url(alice)))

    assert [(row.device, row.ip_address) for row in rows] == [
        ("Chrome on Linux", "203.0.113.7")
    ]


def test_revoking_one_session_in_the_admin_ends_only_that_session(
    alice: User, superuser: User
) -> None:
    target = sign_in(alice)
    bystander = sign_in(alice)
    admin = sign_in(superuser)
    handles = [row.handle for row in session_rows(admin.get(_sessions_url(alice)))]
    handle = session_binding(session_key_of(target))
    assert handle in handles

    response = admin.post(
        _sessions_url(alice),
        {"session": handle, "csrfmiddlewaretoken": csrf_token(admin)},
    )

    assert response.status_code == 302
    assert response["Location"] == _sessions_url(alice)
    assert not session_exists(session_key_of(target))
    assert target.get("/").status_code == 302
    assert session_exists(session_key_of(bystander))


def test_revoking_all_sessions_in_the_admin_ends_every_session_of_the_user(
    alice: User, bob: User, superuser: User
) -> None:
    targets = [sign_in(alice), sign_in(alice)]
    bystander = sign_in(bob)
    admin = sign_in(superuser)

    response = admin.post(
        _sessions_url(alice),
        {"revoke_all": "1", "csrfmiddlewaretoken": csrf_token(admin)},
        follow=True,
    )

    assert "Signed out 2 session(s)." in response.content.decode()
    assert "alice has no live sessions." in response.content.decode()
    assert [session_exists(session_key_of(c)) for c in targets] == [False, False]
    assert session_exists(session_key_of(bystander))
    assert session_exists(session_key_of(admin))


def test_a_handle_of_another_users_session_revokes_nothing_in_the_admin(
    alice: User, bob: User, superuser: User
) -> None:
    bobs = sign_in(bob)
    admin = sign_in(superuser)

    response = admin.post(
        _sessions_url(alice),
        {
            "session": session_binding(session_key_of(bobs)),
            "csrfmiddlewaretoken": csrf_token(admin),
        },
        follow=True,
    )

    assert "Signed out 0 session(s)." in response.content.decode()
    assert session_exists(session_key_of(bobs))


def test_the_admin_sessions_page_is_closed_to_non_staff(alice: User, bob: User) -> None:
    target = sign_in(alice)
    client = sign_in(bob)

    response = client.post(
        _sessions_url(alice),
        {"revoke_all": "1", "csrfmiddlewaretoken": csrf_token(client)},
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert session_exists(session_key_of(target))


def test_the_admin_sessions_page_is_closed_to_staff_without_change_permission(
    alice: User, make_user: Callable[..., User]
) -> None:
    target = sign_in(alice)
    viewer = sign_in(make_user("viewer", "acme", is_staff=True))

    response = viewer.post(
        _sessions_url(alice),
        {"revoke_all": "1", "csrfmiddlewaretoken": csrf_token(viewer)},
    )

    assert response.status_code == 403
    assert session_exists(session_key_of(target))
