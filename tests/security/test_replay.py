"""
Replay and revocation: a token opens one door once. A second use, in turn
or in a race, is refused; so is a token whose Redis marker is gone, however
it went (deleted, expired, flushed), since the surfaces fail closed; and a
WebSocket token not yet spent dies with the session that minted it.
"""

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.test import Client, override_settings

from accounts.services import session_binding
from accounts.sessions import SessionStore
from dashify.redis import get_client, key
from realtime.models import Notification
from tests.conftest import PASSWORD, csrf_headers, mint_token
from tests.security.conftest import (
    ACCEPT,
    REPLAYED,
    ApiSurface,
    Surface,
    WebSocketSurface,
    ahandshake,
    handshake,
    member,
    notification_body,
    post_notification,
    security_lines,
    signed_in,
    ws_path,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Takes the surface (of the kind its table is for) and the forged token.
Spoiler = Callable[[Any, str], None]


def marker_key(surface: Surface) -> str:
    name = "ws-jti" if isinstance(surface, WebSocketSurface) else "svc-jti"
    return key(name, surface.jti)


def used_once(surface: Surface, token: str) -> None:
    surface.check(token, ACCEPT)


def marker_deleted(surface: Surface, token: str) -> None:
    assert get_client("tokens").delete(marker_key(surface)) == 1


def marker_expired(surface: Surface, token: str) -> None:
    # What Redis does when a marker's time is up, or when it evicts it.
    tokens_db = get_client("tokens")
    assert tokens_db.pexpire(marker_key(surface), 1)
    deadline = time.monotonic() + 2
    while tokens_db.exists(marker_key(surface)):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def tokens_database_emptied(surface: Surface, token: str) -> None:
    tokens_db = get_client("tokens")
    names = list(tokens_db.scan_iter(match=f"{settings.DASHIFY_REDIS_KEY_PREFIX}:*"))
    assert names
    tokens_db.delete(*names)


def session_index_deleted(surface: WebSocketSurface, token: str) -> None:
    assert get_client("tokens").delete(key("ws-sid", surface.binding)) == 1


def jti_removed_from_session_index(surface: WebSocketSurface, token: str) -> None:
    assert get_client("tokens").srem(key("ws-sid", surface.binding), surface.jti) == 1


def marker_names_another_session(surface: WebSocketSurface, token: str) -> None:
    get_client("tokens").set(marker_key(surface), "cd" * 16, keepttl=True)


def spent_under_another_spelling(surface: WebSocketSurface, token: str) -> None:
    surface.check(token, ACCEPT, lambda: handshake(ws_path(token).replace(".", "%2E")))


SPOILERS: list[tuple[str, Spoiler]] = [
    ("used-once-already", used_once),
    ("marker-deleted", marker_deleted),
    ("marker-expired", marker_expired),
    ("tokens-database-emptied", tokens_database_emptied),
]

SOCKET_SPOILERS: list[tuple[str, Spoiler]] = [
    ("session-index-deleted", session_index_deleted),
    ("jti-removed-from-session-index", jti_removed_from_session_index),
    ("marker-names-another-session", marker_names_another_session),
    ("spent-under-another-spelling", spent_under_another_spelling),
]


@pytest.mark.parametrize(
    ("surface", "spoil"),
    [
        *(
            pytest.param(name, spoil, id=f"{name}:{case}")
            for case, spoil in SPOILERS
            for name in ("ws", "api")
        ),
        *(
            pytest.param("ws", spoil, id=f"ws:{case}")
            for case, spoil in SOCKET_SPOILERS
        ),
    ],
    indirect=["surface"],
)
def test_a_token_whose_single_use_is_gone_is_refused(
    surface: Surface, spoil: Spoiler
) -> None:
    token = surface.forge()
    spoil(surface, token)

    surface.check(token, REPLAYED.on(surface.name))


# --- unspent WebSocket tokens of sessions that ended ------------------------------


def with_password(surface: WebSocketSurface) -> None:
    """Give alice a password, then a fresh session (setting it ended the old)."""
    surface.alice.set_password(PASSWORD)
    surface.alice.save()
    surface.client = signed_in(surface.alice)


def binding_of(surface: WebSocketSurface) -> str:
    return session_binding(surface.client.cookies[settings.SESSION_COOKIE_NAME].value)


def logout(surface: WebSocketSurface) -> None:
    response = surface.client.post("/accounts/logout/", **csrf_headers(surface.client))
    assert response.status_code == 302


def revoked_from_another_session(surface: WebSocketSurface) -> None:
    other = signed_in(surface.alice)
    response = other.post(
        "/accounts/sessions/", {"session": binding_of(surface)}, **csrf_headers(other)
    )
    assert response.status_code == 302


def all_others_revoked(surface: WebSocketSurface) -> None:
    other = signed_in(surface.alice)
    response = other.post(
        "/accounts/sessions/", {"revoke_others": "1"}, **csrf_headers(other)
    )
    assert response.status_code == 302


def change_password(client: Client) -> None:
    response = client.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-brand-new-passphrase-42",
            "new_password2": "a-brand-new-passphrase-42",
        },
        **csrf_headers(client),
    )
    assert response.status_code == 302, response.content


def password_changed_on_this_device(surface: WebSocketSurface) -> None:
    change_password(surface.client)


def password_changed_on_another_device(surface: WebSocketSurface) -> None:
    change_password(signed_in(surface.alice))


def password_set_outside_any_form(surface: WebSocketSurface) -> None:
    surface.alice.set_password("set-from-a-management-shell-77")
    surface.alice.save()


def deactivated(surface: WebSocketSurface) -> None:
    surface.alice.is_active = False
    surface.alice.save()


def deleted(surface: WebSocketSurface) -> None:
    surface.alice.delete()


def admin_client() -> Client:
    admin = member("root", "acme", is_staff=True, is_superuser=True)
    client = signed_in(admin)
    assert client.get("/admin/").status_code == 200
    return client


def revoked_by_an_admin(surface: WebSocketSurface) -> None:
    admin = admin_client()
    response = admin.post(
        f"/admin/accounts/user/{surface.alice.pk}/sessions/",
        {"session": binding_of(surface)},
        **csrf_headers(admin),
    )
    assert response.status_code == 302


def all_revoked_by_an_admin(surface: WebSocketSurface) -> None:
    admin = admin_client()
    response = admin.post(
        f"/admin/accounts/user/{surface.alice.pk}/sessions/",
        {"revoke_all": "1"},
        **csrf_headers(admin),
    )
    assert response.status_code == 302


def expired(surface: WebSocketSurface) -> None:
    # What Redis does when a session's time is up: its keys vanish, and no
    # code of Dashify's runs.
    session_key = surface.client.cookies[settings.SESSION_COOKIE_NAME].value
    sessions = caches[settings.SESSION_CACHE_ALIAS]
    assert sessions.delete(SessionStore().raw_cache_key(session_key))
    get_client("tokens").delete(key("session-alive", binding_of(surface)))


# (id, what ends the session, whether alice needs a password for it)
SESSION_ENDINGS: list[tuple[str, Callable[[WebSocketSurface], None], bool]] = [
    ("logout", logout, False),
    ("revoked-from-another-session", revoked_from_another_session, False),
    ("all-other-sessions-revoked", all_others_revoked, False),
    ("password-changed-on-this-device", password_changed_on_this_device, True),
    ("password-changed-on-another-device", password_changed_on_another_device, True),
    ("password-set-outside-any-form", password_set_outside_any_form, False),
    ("deactivated", deactivated, False),
    ("deleted", deleted, False),
    ("revoked-by-an-admin", revoked_by_an_admin, False),
    ("all-revoked-by-an-admin", all_revoked_by_an_admin, False),
    ("expired", expired, False),
]


@pytest.mark.parametrize(
    ("surface", "end_session", "needs_password"),
    [
        pytest.param("ws", end, needs_password, id=f"ws:{case}")
        for case, end, needs_password in SESSION_ENDINGS
    ],
    indirect=["surface"],
)
def test_an_unspent_websocket_token_dies_with_its_session(
    surface: WebSocketSurface,
    end_session: Callable[[WebSocketSurface], None],
    needs_password: bool,
) -> None:
    if needs_password:
        with_password(surface)
    token = mint_token(surface.client)

    end_session(surface)

    surface.check(token, REPLAYED.ws, lambda: handshake(ws_path(token)))


# --- racing replays -------------------------------------------------------------------

RACERS = 5


@pytest.mark.parametrize("surface", ["ws"], indirect=True)
def test_racing_handshakes_with_one_token_admit_exactly_one(
    surface: WebSocketSurface,
) -> None:
    token = surface.forge()

    async def race() -> list[bool]:
        results = await asyncio.gather(
            *(ahandshake(ws_path(token)) for _ in range(RACERS))
        )
        return [result.connected for result in results]

    connected = async_to_sync(race)()

    assert sorted(connected) == [False] * (RACERS - 1) + [True]
    assert security_lines(surface.caplog, "ws handshake refused") == [
        surface.refusal_line(REPLAYED.ws)
    ] * (RACERS - 1)


@pytest.mark.parametrize("surface", ["api"], indirect=True)
def test_racing_calls_with_one_service_token_succeed_exactly_once(
    surface: ApiSurface,
) -> None:
    token = surface.forge()
    start = threading.Barrier(RACERS)
    statuses: list[int] = []

    def call(index: int) -> None:
        try:
            start.wait(timeout=5)
            response = post_notification(
                notification_body(surface.alice),
                f"Bearer {token}",
                idempotency_key=f"race-{index}",
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(statuses) == [201] + [401] * (RACERS - 1)
    assert Notification.objects.count() == 1


# --- rotating DJANGO_SECRET_KEY -------------------------------------------------------


@pytest.mark.parametrize("surface", ["ws"], indirect=True)
def test_rotating_the_django_secret_key_voids_unspent_websocket_tokens(
    surface: WebSocketSurface,
) -> None:
    token = mint_token(surface.client)

    with override_settings(SECRET_KEY=settings.SECRET_KEY[::-1] + "-rotated"):
        surface.check(token, REPLAYED.ws, lambda: handshake(ws_path(token)))
