"""Dashify's own startup checks of its secrets and of PyJWT."""

from collections.abc import Sequence
from unittest import mock

from django.core.checks import CheckMessage
from django.test import override_settings

from dashify import checks

LONG = "k" * 64


def ids(messages: Sequence[CheckMessage]) -> list[str | None]:
    return [message.id for message in messages]


@override_settings(
    SECRET_KEY=LONG + "a",
    DASHIFY_WS_TOKEN_SECRET=LONG + "b",
    DASHIFY_SERVICE_TOKEN_SECRET=LONG + "c",
)
def test_three_long_distinct_secrets_pass() -> None:
    assert checks.check_token_secrets(None) == []


@override_settings(
    SECRET_KEY=LONG + "a",
    DASHIFY_WS_TOKEN_SECRET="short",
    DASHIFY_SERVICE_TOKEN_SECRET=LONG + "c",
)
def test_a_short_token_secret_is_an_error_naming_it() -> None:
    errors = checks.check_token_secrets(None)

    assert ids(errors) == ["dashify.E001"]
    assert errors[0].msg == "DASHIFY_WS_TOKEN_SECRET is shorter than 32 bytes."


@override_settings(
    SECRET_KEY="s" * 40,
    DASHIFY_WS_TOKEN_SECRET=LONG + "b",
    DASHIFY_SERVICE_TOKEN_SECRET=LONG + "c",
)
def test_a_secret_key_under_fifty_bytes_is_an_error() -> None:
    errors = checks.check_token_secrets(None)

    assert errors[0].msg == "DJANGO_SECRET_KEY is shorter than 50 bytes."


@override_settings(
    SECRET_KEY=LONG,
    DASHIFY_WS_TOKEN_SECRET=LONG,
    DASHIFY_SERVICE_TOKEN_SECRET=LONG + "c",
)
def test_a_secret_shared_by_two_purposes_is_an_error() -> None:
    assert ids(checks.check_token_secrets(None)) == ["dashify.E002"]


def test_an_old_pyjwt_is_a_warning() -> None:
    with mock.patch.object(checks.jwt, "__version__", "2.8.0"):
        assert ids(checks.check_pyjwt_version(None)) == ["dashify.W001"]


def test_the_pinned_pyjwt_passes() -> None:
    assert checks.check_pyjwt_version(None) == []
