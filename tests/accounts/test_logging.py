import logging

import pytest
from django.conf import settings

from accounts.models import User
from tests.accounts.support import csrf_header, csrf_token, sign_in
from tests.conftest import PASSWORD, mint_token, session_key_of


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    # Records as a handler without Dashify's redaction filter would see
    # them: message, raw arguments and any exception text.
    return "\n".join(
        [caplog.text]
        + [
            f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
            for record in caplog.records
        ]
    )


def test_a_full_session_logs_no_credential(
    alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    other = sign_in(alice)
    client = sign_in(alice)
    credentials = {
        "session key": session_key_of(client),
        "other session key": session_key_of(other),
        "token": mint_token(client),
        "csrf token": csrf_token(client),
        "password": PASSWORD,
    }
    client.post(
        "/accounts/sessions/",
        {"revoke_others": "1", "csrfmiddlewaretoken": csrf_token(client)},
    )
    client.post("/accounts/logout/", headers=csrf_header(client))

    logged = _everything_logged(caplog)

    assert [name for name, value in credentials.items() if value in logged] == []


def test_a_full_session_logs_its_events_by_user_id(
    alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sign_in(alice)
    client = sign_in(alice)
    mint_token(client)
    client.post(
        "/accounts/sessions/",
        {"revoke_others": "1", "csrfmiddlewaretoken": csrf_token(client)},
    )
    client.post("/accounts/logout/", headers=csrf_header(client))

    security = [
        record.getMessage()
        for record in caplog.records
        if record.name == "dashify.security"
    ]

    assert security[:2] == [f"session started user={alice.pk}"] * 2
    assert security[2].startswith(
        f"ws token issued user={alice.pk} tenant={alice.tenant_id} jti="
    )
    assert security[3] == f"sessions revoked user={alice.pk} count=1 reason=revoked"


def test_a_failed_login_logs_neither_the_password_tried_nor_the_csrf_token(
    alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = sign_in(alice)
    client.post("/accounts/logout/", headers=csrf_header(client))
    client.get("/accounts/login/")
    tried = "hunter2-wrong-password"

    client.post(
        "/accounts/login/",
        {
            "username": "alice",
            "password": tried,
            "csrfmiddlewaretoken": client.cookies[settings.CSRF_COOKIE_NAME].value,
        },
    )

    logged = _everything_logged(caplog)
    assert tried not in logged
    assert client.cookies[settings.CSRF_COOKIE_NAME].value not in logged
