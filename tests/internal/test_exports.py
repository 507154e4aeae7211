"""
POST /internal/exports/<id>/ with the export's own service token stores the
CSV once and notifies the person who asked for it once.
"""

import pytest
from django.urls import reverse

from accounts.models import User
from internal import scopes
from realtime.models import Export, Notification
from tests.internal.conftest import api_client, post_export
from worker.api import issue_service_token

pytestmark = pytest.mark.django_db

CSV = "card,title,column,position,assignee,due_at\r\n1,Draft,To do,0,,\r\n"


def token_for(export: Export) -> str:
    return issue_service_token(
        scopes.export_complete(tenant_id=export.board.tenant_id, export_id=export.pk)
    )


def test_the_exports_own_token_stores_the_csv_and_notifies_the_requester(
    alice: User, alice_export: Export
) -> None:
    response = post_export(
        api_client(),
        alice_export.pk,
        CSV,
        authorization=f"Bearer {token_for(alice_export)}",
        idempotency_key=f"export:{alice_export.pk}",
    )

    alice_export.refresh_from_db()
    assert response.status_code == 200
    assert response.json() == {"id": alice_export.pk, "status": "ready"}
    assert (alice_export.status, alice_export.content) == (Export.Status.READY, CSV)
    assert list(Notification.objects.values_list("user", "text", "link")) == [
        (
            alice.pk,
            "Your export of board “Roadmap” is ready.",
            reverse("realtime:download_export", args=[alice_export.pk]),
        )
    ]


def test_completing_an_export_again_changes_nothing_and_notifies_no_one_twice(
    alice_export: Export,
) -> None:
    for content in (CSV, "card,title\r\n99,Overwritten,,,,\r\n"):
        response = post_export(
            api_client(),
            alice_export.pk,
            content,
            authorization=f"Bearer {token_for(alice_export)}",
            idempotency_key=f"export:{alice_export.pk}",
        )
        assert response.status_code == 200

    alice_export.refresh_from_db()
    assert alice_export.content == CSV
    assert Notification.objects.count() == 1


def test_an_export_completion_without_an_idempotency_key_is_refused_with_400(
    alice_export: Export,
) -> None:
    response = post_export(
        api_client(),
        alice_export.pk,
        CSV,
        authorization=f"Bearer {token_for(alice_export)}",
        idempotency_key=None,
    )

    alice_export.refresh_from_db()
    assert response.status_code == 400
    assert response.json() == {"error": "bad_request"}
    assert alice_export.status == Export.Status.PENDING
    assert Notification.objects.count() == 0


def test_a_csv_that_is_not_utf8_is_refused_with_400(alice_export: Export) -> None:
    response = api_client().post(
        f"/internal/exports/{alice_export.pk}/",
        b"card,title\r\n1,\xff\xfe\r\n",
        content_type="text/csv",
        HTTP_AUTHORIZATION=f"Bearer {token_for(alice_export)}",
        HTTP_IDEMPOTENCY_KEY=f"export:{alice_export.pk}",
    )

    alice_export.refresh_from_db()
    assert response.status_code == 400
    assert alice_export.status == Export.Status.PENDING


def test_an_unknown_export_is_404_after_the_token_verified(
    alice: User, alice_export: Export
) -> None:
    missing = alice_export.pk + 1000
    token = issue_service_token(
        scopes.export_complete(tenant_id=alice.tenant_id, export_id=missing)
    )

    response = post_export(
        api_client(),
        missing,
        CSV,
        authorization=f"Bearer {token}",
        idempotency_key=f"export:{missing}",
    )

    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}


def test_an_unknown_export_is_401_without_a_token(alice_export: Export) -> None:
    # Without a valid token the API must not reveal which export ids exist.
    response = post_export(
        api_client(),
        alice_export.pk + 1000,
        CSV,
        authorization=None,
        idempotency_key="export:x",
    )

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="dashify-internal"'
