from django.test import Client

from accounts import selectors
from accounts.models import User
from accounts.services import session_binding
from tests.accounts.support import csrf_token, session_rows, sign_in
from tests.conftest import PASSWORD, session_exists, session_key_of

NEW_PASSWORD = "another-horse-battery-staple"


def _change_password_on_the_page(client: Client) -> None:
    client.get("/accounts/password/")
    response = client.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
            "csrfmiddlewaretoken": csrf_token(client),
        },
    )
    assert response.status_code == 302, response.content
    assert response["Location"] == "/accounts/sessions/"


def _change_password_in_the_admin(admin: Client, user: User, **extra: str) -> None:
    url = f"/admin/accounts/user/{user.pk}/password/"
    admin.get(url)
    response = admin.post(
        url,
        {
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "csrfmiddlewaretoken": csrf_token(admin),
            **extra,
        },
    )
    assert response.status_code == 302, response.content
    assert response["Location"] == f"/admin/accounts/user/{user.pk}/change/"


# --- password change on the password page -----------------------------------------


def test_a_password_change_ends_every_other_session_in_redis(alice: User) -> None:
    others = [sign_in(alice), sign_in(alice)]
    client = sign_in(alice)

    _change_password_on_the_page(client)

    assert [session_exists(session_key_of(other)) for other in others] == [
        False,
        False,
    ]


def test_a_password_change_signs_every_other_device_out(alice: User) -> None:
    other = sign_in(alice)
    client = sign_in(alice)

    _change_password_on_the_page(client)

    response = other.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_a_password_change_keeps_the_changing_device_signed_in_under_a_new_key(
    alice: User,
) -> None:
    client = sign_in(alice)
    old_key = session_key_of(client)

    _change_password_on_the_page(client)

    new_key = session_key_of(client)
    assert new_key != old_key
    assert not session_exists(old_key)
    assert session_exists(new_key)
    assert client.get("/").status_code == 200


def test_after_a_password_change_the_sessions_page_lists_only_this_device(
    alice: User,
) -> None:
    sign_in(alice)
    client = sign_in(alice)

    _change_password_on_the_page(client)

    rows = session_rows(client.get("/accounts/sessions/"))
    assert [(row.is_marked_current, row.handle) for row in rows] == [(True, None)]
    assert [info.handle for info in selectors.live_sessions(alice.pk)] == [
        session_binding(session_key_of(client))
    ]


def test_a_password_change_with_a_wrong_old_password_ends_nothing(
    alice: User,
) -> None:
    other = sign_in(alice)
    client = sign_in(alice)

    response = client.post(
        "/accounts/password/",
        {
            "old_password": "not-the-password",
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
            "csrfmiddlewaretoken": csrf_token(client),
        },
    )

    assert response.status_code == 200
    assert session_exists(session_key_of(other))
    assert session_exists(session_key_of(client))


# --- password change elsewhere ------------------------------------------------------


def test_set_password_and_save_ends_every_session_of_the_user(alice: User) -> None:
    clients = [sign_in(alice), sign_in(alice)]

    alice.set_password(NEW_PASSWORD)
    alice.save()

    assert [session_exists(session_key_of(c)) for c in clients] == [False, False]
    assert selectors.live_sessions(alice.pk) == []


def test_set_password_and_save_leaves_other_users_signed_in(
    alice: User, bob: User
) -> None:
    bystander = sign_in(bob)
    sign_in(alice)

    alice.set_password(NEW_PASSWORD)
    alice.save()

    assert session_exists(session_key_of(bystander))


def test_saving_a_user_without_a_new_password_ends_nothing(alice: User) -> None:
    client = sign_in(alice)
    alice = User.objects.get(pk=alice.pk)

    alice.first_name = "Alice"
    alice.save()

    assert session_exists(session_key_of(client))


def test_a_password_change_in_the_admin_ends_every_session_of_the_user(
    alice: User, superuser: User
) -> None:
    clients = [sign_in(alice), sign_in(alice)]
    admin = sign_in(superuser)

    _change_password_in_the_admin(admin, alice)

    assert [session_exists(session_key_of(c)) for c in clients] == [False, False]
    assert [c.get("/").status_code for c in clients] == [302, 302]
    assert session_exists(session_key_of(admin))


def test_disabling_password_login_in_the_admin_ends_every_session_of_the_user(
    alice: User, superuser: User
) -> None:
    client = sign_in(alice)
    admin = sign_in(superuser)

    # set_unusable_password() leaves no raw password behind for a receiver
    # to notice, unlike set_password().
    _change_password_in_the_admin(
        admin,
        alice,
        usable_password="false",
        password1="",
        password2="",
        **{"unset-password": "1"},
    )

    assert not User.objects.get(pk=alice.pk).has_usable_password()
    assert not session_exists(session_key_of(client))
    assert selectors.live_sessions(alice.pk) == []


def test_an_admin_changing_their_own_password_stays_listed_on_the_sessions_page(
    superuser: User,
) -> None:
    admin = sign_in(superuser)

    # The admin saves the password (which revokes every session, this one
    # included) and only then cycles this session's key to keep it alive.
    _change_password_in_the_admin(admin, superuser)

    assert admin.get("/").status_code == 200
    rows = session_rows(admin.get("/accounts/sessions/"))
    assert [row.is_marked_current for row in rows] == [True]


def test_revoking_all_sessions_after_an_admin_changed_their_own_password_signs_out(
    superuser: User,
) -> None:
    admin = sign_in(superuser)
    _change_password_in_the_admin(admin, superuser)
    key_after_change = session_key_of(admin)

    admin.post(
        f"/admin/accounts/user/{superuser.pk}/sessions/",
        {"revoke_all": "1", "csrfmiddlewaretoken": csrf_token(admin)},
    )

    assert not session_exists(key_after_change)
    assert admin.get("/").status_code == 302


# --- deactivation and deletion -----------------------------------------------------


def test_deactivating_a_user_ends_every_session_of_the_user(alice: User) -> None:
    clients = [sign_in(alice), sign_in(alice)]

    alice.is_active = False
    alice.save()

    assert [session_exists(session_key_of(c)) for c in clients] == [False, False]
    assert selectors.live_sessions(alice.pk) == []


def test_the_admin_deactivate_action_ends_every_session_of_the_selected_users(
    alice: User, bob: User, carol: User, superuser: User
) -> None:
    targets = [sign_in(alice), sign_in(bob)]
    bystander = sign_in(carol)
    admin = sign_in(superuser)

    response = admin.post(
        "/admin/accounts/user/",
        {
            "action": "deactivate",
            "_selected_action": [alice.pk, bob.pk],
            "csrfmiddlewaretoken": csrf_token(admin),
        },
    )

    assert response.status_code == 302
    assert list(
        User.objects.filter(pk__in=[alice.pk, bob.pk]).values_list(
            "is_active", flat=True
        )
    ) == [False, False]
    assert [session_exists(session_key_of(c)) for c in targets] == [False, False]
    assert session_exists(session_key_of(bystander))


def test_the_admin_revoke_action_ends_every_session_of_the_selected_users(
    alice: User, bob: User, superuser: User
) -> None:
    target = sign_in(alice)
    bystander = sign_in(bob)
    admin = sign_in(superuser)

    admin.post(
        "/admin/accounts/user/",
        {
            "action": "revoke_all_sessions",
            "_selected_action": [alice.pk],
            "csrfmiddlewaretoken": csrf_token(admin),
        },
    )

    assert not session_exists(session_key_of(target))
    assert target.get("/").status_code == 302
    assert session_exists(session_key_of(bystander))
    assert User.objects.get(pk=alice.pk).is_active


def test_deleting_a_user_ends_every_session_of_the_user(alice: User) -> None:
    clients = [sign_in(alice), sign_in(alice)]

    alice.delete()

    assert [session_exists(session_key_of(c)) for c in clients] == [False, False]
