"""
POST /internal/notifications/ with a right service token notifies one user
of the token's tenant once per idempotency key, and pushes the notification
to that user's open sockets.
"""

import base64
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from accounts.models import User
from dashify.asgi import application
from internal import scopes
from realtime.models import Notification
from tests.conftest import mint_token, signed_in_client
from tests.internal.conftest import (
    api_client,
    marker_exists,
    notification_body,
    post_notification,
)
from worker.api import issue_service_token

pytestmark = pytest.mark.django_db


def token_for(user: User) -> str:
    return issue_service_token(
        scopes.notification_create(tenant_id=user.tenant_id, user_id=user.pk)
    )


def test_a_right_service_token_creates_the_notification(alice: User) -> None:
    response = post_notification(
        api_client(),
        notification_body(alice, text="Build finished.", link="/realtime/x/"),
        authorization=f"Bearer {token_for(alice)}",
        idempotency_key="build:7",
    )

    notification = Notification.objects.get()
    assert response.status_code == 201
    assert response.json() == {"id": notification.pk, "created": True}
    assert (
        notification.user,
        notification.text,
        notification.link,
        notification.idempotency_key,
        notification.read_at,
    ) == (alice, "Build finished.", "/realtime/x/", "build:7", None)


def issued_jti(token: str) -> str:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=="))["jti"]


def test_a_used_service_token_is_spent_in_redis(alice: User) -> None:
    token = token_for(alice)
    jti = issued_jti(token)
    assert marker_exists(jti)

    response = post_notification(
        api_client(), notification_body(alice), authorization=f"Bearer {token}"
    )

    assert response.status_code == 201
    assert not marker_exists(jti)


def test_a_retry_with_the_same_idempotency_key_and_a_fresh_token_creates_nothing(
    alice: User,
) -> None:
    first = post_notification(
        api_client(),
        notification_body(alice),
        authorization=f"Bearer {token_for(alice)}",
        idempotency_key="reminder:3:1700000000",
    )

    retry = post_notification(
        api_client(),
        notification_body(alice, text="A different text on the retry."),
        authorization=f"Bearer {token_for(alice)}",
        idempotency_key="reminder:3:1700000000",
    )

    assert first.status_code == 201
    assert retry.status_code == 200
    assert retry.json() == {"id": first.json()["id"], "created": False}
    assert list(Notification.objects.values_list("pk", "text")) == [
        (first.json()["id"], notification_body(alice)["text"])
    ]


def test_the_same_idempotency_key_for_another_user_is_another_notification(
    alice: User, bob: User
) -> None:
    for user in (alice, bob):
        response = post_notification(
            api_client(),
            notification_body(user),
            authorization=f"Bearer {token_for(user)}",
            idempotency_key="reminder:3:1700000000",
        )
        assert response.status_code == 201

    assert sorted(Notification.objects.values_list("user__username", flat=True)) == [
        "alice",
        "bob",
    ]


@pytest.mark.parametrize(
    "idempotency_key",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("k" * 101, id="longer-than-100"),
    ],
)
def test_a_request_without_a_usable_idempotency_key_is_refused_with_400(
    idempotency_key: str | None, alice: User
) -> None:
    response = post_notification(
        api_client(),
        notification_body(alice),
        authorization=f"Bearer {token_for(alice)}",
        idempotency_key=idempotency_key,
    )

    assert response.status_code == 400
    assert response.json() == {"error": "bad_request"}
    assert Notification.objects.count() == 0


@pytest.mark.parametrize(
    "body_changes",
    [
        pytest.param({"text": None}, id="no-text"),
        pytest.param({"text": 42}, id="text-not-a-string"),
    ],
)
def test_a_notification_without_text_is_refused_with_400(
    body_changes: dict[str, object], alice: User
) -> None:
    body = {
        name: value
        for name, value in notification_body(alice, **body_changes).items()
        if value is not None
    }

    response = post_notification(
        api_client(), body, authorization=f"Bearer {token_for(alice)}"
    )

    assert response.status_code == 400
    assert response.json() == {"error": "bad_request"}
    assert Notification.objects.count() == 0


def test_a_body_that_is_not_a_json_object_is_refused_with_400(alice: User) -> None:
    response = api_client().post(
        "/internal/notifications/",
        "[1, 2]",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token_for(alice)}",
        HTTP_IDEMPOTENCY_KEY="k",
    )

    assert response.status_code == 400
    assert response.json() == {"error": "bad_request"}


def test_a_scope_matching_a_user_of_another_tenant_finds_no_one(
    alice: User, carol: User
) -> None:
    # The token and the body agree, so only the tenant filter of the lookup
    # stands between acme's scope and globex's user.
    body = notification_body(carol, tenant=alice.tenant_id)
    token = issue_service_token(
        scopes.notification_create(tenant_id=alice.tenant_id, user_id=carol.pk)
    )

    response = post_notification(api_client(), body, authorization=f"Bearer {token}")

    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}
    assert Notification.objects.count() == 0


def test_an_inactive_user_is_not_notified(alice: User) -> None:
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    response = post_notification(
        api_client(),
        notification_body(alice),
        authorization=f"Bearer {token_for(alice)}",
    )

    assert response.status_code == 404
    assert Notification.objects.count() == 0


@pytest.mark.parametrize(
    "link",
    [
        pytest.param("https://evil.example/", id="absolute-url"),
        pytest.param("javascript:alert(1)", id="javascript-url"),
        pytest.param("//evil.example/", id="scheme-relative-url"),
        pytest.param("/\\evil.example/", id="backslash-scheme-relative-url"),
        pytest.param(["/"], id="not-a-string"),
    ],
)
def test_a_link_off_the_site_is_dropped(link: object, alice: User) -> None:
    response = post_notification(
        api_client(),
        notification_body(alice, link=link),
        authorization=f"Bearer {token_for(alice)}",
    )

    assert response.status_code == 201
    assert Notification.objects.get().link == ""


@pytest.mark.django_db(transaction=True)
async def test_a_new_notification_reaches_the_users_open_socket(alice: User) -> None:
    ws_token = await sync_to_async(lambda: mint_token(signed_in_client(alice)))()
    origin = settings.DASHIFY_ALLOWED_ORIGINS[0].encode()
    socket = WebsocketCommunicator(
        application, f"/ws/?token={ws_token}", headers=[(b"origin", origin)]
    )
    connected, _ = await socket.connect()
    assert connected
    try:
        hello = await socket.receive_json_from()
        assert (hello["type"], hello["unread"]) == ("hello", 0)

        response = await sync_to_async(post_notification)(
            api_client(),
            notification_body(alice, text="Build finished.", link="/"),
            authorization=f"Bearer {await sync_to_async(token_for)(alice)}",
        )
        frame = await socket.receive_json_from(timeout=2)
    finally:
        await socket.disconnect()

    notification = await Notification.objects.aget()
    assert response.status_code == 201
    assert frame == {
        "type": "notification.created",
        "notification": {
            "id": notification.pk,
            "text": "Build finished.",
            "link": "/",
            "at": notification.created_at.isoformat(),
            "read": False,
        },
        "unread": 1,
    }


@pytest.mark.django_db(transaction=True)
async def test_a_retried_notification_is_not_pushed_again(alice: User) -> None:
    first = await sync_to_async(post_notification)(
        api_client(),
        notification_body(alice),
        authorization=f"Bearer {await sync_to_async(token_for)(alice)}",
        idempotency_key="once",
    )
    assert first.status_code == 201
    ws_token = await sync_to_async(lambda: mint_token(signed_in_client(alice)))()
    origin = settings.DASHIFY_ALLOWED_ORIGINS[0].encode()
    socket = WebsocketCommunicator(
        application, f"/ws/?token={ws_token}", headers=[(b"origin", origin)]
    )
    connected, _ = await socket.connect()
    assert connected
    try:
        hello = await socket.receive_json_from()

        retry = await sync_to_async(post_notification)(
            api_client(),
            notification_body(alice),
            authorization=f"Bearer {await sync_to_async(token_for)(alice)}",
            idempotency_key="once",
        )
        # A first notification reaches the socket well within this (see
        # the test above); a retry must send nothing at all.
        silent = await socket.receive_nothing(timeout=1.5)
    finally:
        await socket.disconnect()

    assert (hello["type"], hello["unread"]) == ("hello", 1)
    assert retry.status_code == 200
    assert silent
