"""
worker.api.call: one fresh single-use token per attempt, the same
idempotency key on every attempt, retries only for an unreachable or
failing API, never for a refusal.
"""

import json
import logging
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.test import override_settings

from accounts import tokens
from dashify.redis import get_client, key
from internal import scopes
from tests.conftest import LiveSite
from worker import api

WORKER_LOGGER = "dashify.worker"
SCOPE = scopes.notification_create(tenant_id=1, user_id=1)
BODY: dict[str, int | str] = {
    "tenant": 1,
    "user": 1,
    "text": "Build finished.",
    "link": "/",
}


def unspent_markers() -> list[bytes]:
    return list(get_client("tokens").scan_iter(match=key("svc-jti", "*")))


def worker_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == WORKER_LOGGER and record.levelno == logging.WARNING
    ]


def verified_scope(token: str) -> object:
    claims = tokens.verify_token(
        tokens.SERVICE_TOKEN,
        token,
        now=int(time.time()),
        secrets=[settings.DASHIFY_SERVICE_TOKEN_SECRET],
        leeway=settings.DASHIFY_WS_TOKEN_LEEWAY,
        max_lifetime=settings.SERVICE_TOKEN_MAX_LIFETIME,
    )
    return claims if isinstance(claims, tokens.Refusal) else claims["scope"]


def test_minting_a_service_token_records_it_unspent_for_its_lifetime() -> None:
    token = api.issue_service_token(SCOPE)

    markers = unspent_markers()
    ttl = get_client("tokens").ttl(markers[0]) if markers else None
    assert verified_scope(token) == SCOPE
    assert len(markers) == 1
    assert ttl is not None and 0 < ttl <= settings.DASHIFY_SERVICE_TOKEN_TTL


def test_an_unreachable_api_is_tried_the_configured_times_with_a_fresh_token_each(
    caplog: pytest.LogCaptureFixture, unused_api_url: str
) -> None:
    caplog.set_level(logging.WARNING, logger=WORKER_LOGGER)

    with override_settings(
        DASHIFY_INTERNAL_API_URL=unused_api_url,
        DASHIFY_WORKER_ATTEMPTS=3,
        DASHIFY_WORKER_BACKOFF=0.01,
    ):
        with pytest.raises(api.APIUnavailable) as raised:
            api.call(
                "/internal/notifications/",
                scope=SCOPE,
                idempotency_key="k",
                json=BODY,
            )

    assert str(raised.value) == (
        "internal API unreachable (ConnectionError) on /internal/notifications/"
    )
    assert worker_warnings(caplog) == [
        "internal API unreachable (ConnectionError) on /internal/notifications/ "
        f"(attempt {attempt} of 3)"
        for attempt in (1, 2, 3)
    ]
    assert len(unspent_markers()) == 3


class FlakyAPI(BaseHTTPRequestHandler):
    """Answer 503 to the first ``failures`` requests, then 201; keep headers."""

    failures = 2
    seen: list[dict[str, str]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.server.seen.append(  # type: ignore[attr-defined]
            {**dict(self.headers.items()), "body": body.decode()}
        )
        if len(self.server.seen) <= self.failures:  # type: ignore[attr-defined]
            self.send_response(HTTPStatus.SERVICE_UNAVAILABLE)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = json.dumps({"id": 7, "created": True}).encode()
        self.send_response(HTTPStatus.CREATED)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def flaky_api() -> Iterator[ThreadingHTTPServer]:
    """
    A stand-in for an internal API that fails twice: the worker's retry
    discipline is what is under test, not the API.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyAPI)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_failing_api_is_retried_with_a_fresh_token_and_the_same_idempotency_key(
    flaky_api: ThreadingHTTPServer,
) -> None:
    host, port = flaky_api.server_address[:2]
    assert isinstance(host, str)

    with override_settings(
        DASHIFY_INTERNAL_API_URL=f"http://{host}:{port}",
        DASHIFY_WORKER_ATTEMPTS=5,
        DASHIFY_WORKER_BACKOFF=0.01,
    ):
        answer = api.call(
            "/internal/notifications/",
            scope=SCOPE,
            idempotency_key="reminder:3:1700000000",
            json=BODY,
        )

    seen = flaky_api.seen  # type: ignore[attr-defined]
    presented = [request["Authorization"].removeprefix("Bearer ") for request in seen]
    assert answer == {"id": 7, "created": True}
    assert len(seen) == 3
    assert len(set(presented)) == 3
    assert [verified_scope(token) for token in presented] == [SCOPE] * 3
    assert {request["Idempotency-Key"] for request in seen} == {"reminder:3:1700000000"}
    assert {request["body"] for request in seen} == {json.dumps(BODY)}


@pytest.mark.slow
def test_a_refusal_from_the_api_is_not_retried(
    live_site: LiveSite, caplog: pytest.LogCaptureFixture
) -> None:
    server = live_site.start_server()
    caplog.set_level(logging.WARNING, logger=WORKER_LOGGER)

    with override_settings(DASHIFY_INTERNAL_API_URL=server.url):
        with pytest.raises(api.APIRefused) as raised:
            # The scope names another user than the body: 403.
            api.call(
                "/internal/notifications/",
                scope=scopes.notification_create(tenant_id=1, user_id=2),
                idempotency_key="k",
                json=BODY,
            )

    assert str(raised.value) == "internal API answered 403 to /internal/notifications/"
    assert worker_warnings(caplog) == []
    assert len(unspent_markers()) == 1
