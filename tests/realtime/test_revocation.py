"""
Ending a session closes the sockets it opened, wherever the ending came
from: each socket gets a ``session.ended`` frame, then a close code that
tells the client whether to sign in again or just reconnect.
"""

import logging
import re
import threading
from collections.abc import Callable
from http import HTTPStatus

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.models import Tenant, User
from accounts.services import EndReason
from realtime.models import ChatMessage
from realtime.protocol import CloseCode
from tests.conftest import PASSWORD, csrf_headers, signed_in_client
from tests.realtime.conftest import (
    SECURITY_LOGGER,
    Content,
    Person,
    communicator,
    open_socket,
    receive_until_close,
    ws_path,
)

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "a-brand-new-passphrase-42"


@pytest.fixture
def alice_elsewhere(alice: User) -> Person:
    """Alice signed in on a second device."""
    return Person(alice, signed_in_client(alice, user_agent="second device"))


@pytest.fixture
def admin_in(make_user: Callable[..., User]) -> Person:
    admin = make_user("admin", "acme", is_staff=True, is_superuser=True)
    return Person(admin, signed_in_client(admin))


def handles_on(client: Client, url: str) -> list[str]:
    """The session handles a sessions page offers to revoke."""
    response = client.get(url)
    assert response.status_code == 200
    return re.findall(r'name="session" value="([0-9a-f]+)"', response.content.decode())


def post(client: Client, url: str, data: dict[str, str]) -> None:
    response = client.post(url, data, **csrf_headers(client))
    assert response.status_code == 302, response.content


async def test_logout_closes_the_sessions_socket(alice_in: Person) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        await sync_to_async(post)(alice_in.client, "/accounts/logout/", {})

        frames, code = await receive_until_close(socket, within=1.0)

    assert frames == [{"type": "session.ended", "reason": EndReason.SIGNED_OUT}]
    assert code == CloseCode.SESSION_ENDED


async def test_a_closed_sessions_socket_acts_on_nothing_its_client_sends_after(
    alice_in: Person, acme: Content
) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        await socket.send_json_to({"type": "chat.join", "room": acme.room.pk})
        assert (await socket.receive_json_from())["type"] == "chat.history"
        await sync_to_async(post)(alice_in.client, "/accounts/logout/", {})
        _, code = await receive_until_close(socket, within=1.0)

        # A client that ignores the close and keeps writing.
        chat = {"type": "chat.send", "room": acme.room.pk, "body": "after the end"}
        await socket.send_json_to(chat)
        await socket.send_json_to({"type": "ping"})
        answered = await socket.receive_nothing(timeout=0.5)

    assert code == CloseCode.SESSION_ENDED
    assert answered is True
    assert not await ChatMessage.objects.filter(body="after the end").aexists()


async def test_revoking_one_session_on_the_sessions_page_closes_its_socket(
    alice_in: Person, alice_elsewhere: Person
) -> None:
    token = await sync_to_async(alice_elsewhere.token)()
    async with open_socket(token) as (socket, _):
        [handle] = await sync_to_async(handles_on)(
            alice_in.client, "/accounts/sessions/"
        )
        await sync_to_async(post)(
            alice_in.client, "/accounts/sessions/", {"session": handle}
        )

        frames, code = await receive_until_close(socket, within=1.0)

    assert frames == [{"type": "session.ended", "reason": EndReason.REVOKED}]
    assert code == CloseCode.SESSION_ENDED


async def test_revoking_other_sessions_closes_their_sockets(
    alice_in: Person, alice_elsewhere: Person
) -> None:
    token = await sync_to_async(alice_elsewhere.token)()
    async with open_socket(token) as (socket, _):
        await sync_to_async(post)(
            alice_in.client, "/accounts/sessions/", {"revoke_others": "1"}
        )

        frames, code = await receive_until_close(socket, within=1.0)

    assert frames == [{"type": "session.ended", "reason": EndReason.REVOKED}]
    assert code == CloseCode.SESSION_ENDED


async def test_revoking_other_sessions_keeps_this_devices_socket_open(
    alice_in: Person, alice_elsewhere: Person
) -> None:
    own_token = await sync_to_async(alice_in.token)()
    other_token = await sync_to_async(alice_elsewhere.token)()
    async with (
        open_socket(own_token) as (own, _),
        open_socket(other_token) as (other, _),
    ):
        await sync_to_async(post)(
            alice_in.client, "/accounts/sessions/", {"revoke_others": "1"}
        )
        await receive_until_close(other, within=1.0)

        await own.send_json_to({"type": "ping"})
        assert await own.receive_json_from() == {"type": "pong"}


def change_password(person: Person) -> None:
    post(
        person.client,
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )


async def test_password_change_closes_other_sessions_sockets_as_ended(
    alice_in: Person, alice_elsewhere: Person
) -> None:
    token = await sync_to_async(alice_elsewhere.token)()
    async with open_socket(token) as (socket, _):
        await sync_to_async(change_password)(alice_in)

        frames, code = await receive_until_close(socket, within=1.0)

    assert frames == [{"type": "session.ended", "reason": EndReason.PASSWORD_CHANGED}]
    assert code == CloseCode.SESSION_ENDED


async def test_password_change_closes_the_changing_devices_socket_as_rotated(
    alice_in: Person,
) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        await sync_to_async(change_password)(alice_in)

        frames, code = await receive_until_close(socket, within=1.0)

    assert frames == [{"type": "session.ended", "reason": EndReason.ROTATED}]
    assert code == CloseCode.SESSION_ROTATED


async def test_password_change_leaves_the_changing_device_signed_in(
    alice_in: Person,
) -> None:
    await sync_to_async(change_password)(alice_in)

    response = await sync_to_async(alice_in.client.get)("/")

    assert response.status_code == 200


def deactivate(user: User) -> None:
    user = User.objects.get(pk=user.pk)
    user.is_active = False
    user.save()


def delete(user: User) -> None:
    User.objects.get(pk=user.pk).delete()


async def test_deactivating_the_user_closes_their_sockets(alice_in: Person) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        await sync_to_async(deactivate)(alice_in.user)

        frames, code = await receive_until_close(socket, within=1.0)

    assert frames == [{"type": "session.ended", "reason": EndReason.DEACTIVATED}]
    assert code == CloseCode.SESSION_ENDED


async def test_deleting_the_user_closes_their_sockets(alice_in: Person) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        await sync_to_async(delete)(alice_in.user)

        frames, code = await receive_until_close(socket, within=1.0)

    assert frames == [{"type": "session.ended", "reason": EndReason.DELETED}]
    assert code == CloseCode.SESSION_ENDED


async def test_admin_revoking_one_session_closes_its_socket(
    alice_in: Person, admin_in: Person
) -> None:
    url = f"/admin/accounts/user/{alice_in.user.pk}/sessions/"
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        [handle] = await sync_to_async(handles_on)(admin_in.client, url)
        await sync_to_async(post)(admin_in.client, url, {"session": handle})

        frames, code = await receive_until_close(socket, within=1.0)

    assert frames == [{"type": "session.ended", "reason": EndReason.REVOKED}]
    assert code == CloseCode.SESSION_ENDED


async def test_admin_revoking_all_sessions_closes_every_socket(
    alice_in: Person, alice_elsewhere: Person, admin_in: Person
) -> None:
    url = f"/admin/accounts/user/{alice_in.user.pk}/sessions/"
    first = await sync_to_async(alice_in.token)()
    second = await sync_to_async(alice_elsewhere.token)()
    async with open_socket(first) as (one, _), open_socket(second) as (two, _):
        await sync_to_async(post)(admin_in.client, url, {"revoke_all": "1"})

        closes = [await receive_until_close(one), await receive_until_close(two)]

    ended = [{"type": "session.ended", "reason": EndReason.REVOKED}]
    assert closes == [(ended, CloseCode.SESSION_ENDED)] * 2


class SignOutWhenAccepted(logging.Handler):
    """
    Sign a person out at the moment the handshake middleware has spent
    their token and logged the acceptance, before the consumer runs.

    The handler blocks the event loop while a thread signs out, which puts
    the sign-out exactly inside the window between spending the token and
    the consumer taking over the socket, without touching Dashify's code.
    """

    def __init__(self, person: Person) -> None:
        super().__init__()
        self.person = person
        self.statuses: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.getMessage().startswith("ws handshake accepted"):
            return

        def sign_out() -> None:
            client = self.person.client
            response = client.post("/accounts/logout/", **csrf_headers(client))
            self.statuses.append(response.status_code)

        thread = threading.Thread(target=sign_out)
        thread.start()
        thread.join()


async def test_a_session_ending_during_the_handshake_leaves_no_socket_open(
    alice_in: Person,
) -> None:
    token = await sync_to_async(alice_in.token)()
    hook = SignOutWhenAccepted(alice_in)
    security_logger = logging.getLogger(SECURITY_LOGGER)
    security_logger.addHandler(hook)
    socket = communicator(ws_path(token))
    try:
        connected, _ = await socket.connect()
        security_logger.removeHandler(hook)
        outcome: str | int = "refused"
        if connected:
            # Accepting and then closing at once is as good as refusing.
            assert (await socket.receive_json_from())["type"] == "hello"
            try:
                _, outcome = await receive_until_close(socket, within=1.0)
            except TimeoutError:
                outcome = "still open"
    finally:
        security_logger.removeHandler(hook)
        await socket.disconnect()

    assert hook.statuses == [HTTPStatus.FOUND]
    assert outcome in {"refused", CloseCode.SESSION_ENDED}


def move_to_another_tenant(user: User) -> None:
    user = User.objects.get(pk=user.pk)
    user.tenant = Tenant.objects.create(slug="initech", name="Initech")
    user.save()


async def test_moving_the_user_to_another_tenant_closes_their_sockets(
    alice_in: Person,
) -> None:
    token = await sync_to_async(alice_in.token)()
    async with open_socket(token) as (socket, _):
        await sync_to_async(move_to_another_tenant)(alice_in.user)

        try:
            frames, code = await receive_until_close(socket, within=1.0)
        except TimeoutError:
            pytest.fail("the socket still speaks for the user's former tenant")

    assert [frame["type"] for frame in frames] == ["session.ended"]
    assert code == CloseCode.SESSION_ENDED
