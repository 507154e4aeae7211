"""
A whole visit against a live daphne process logging at DEBUG, with its
access log on: sign in, mint tokens, open a socket, have a foreign origin
and a replay refused, sign out. No line of either log may carry a token
or a piece of one, the session key, a CSRF token, the password or any
secret from the environment.

tests/realtime/test_log_redaction.py proves the same for tokens in the
in-process log records; this covers what a deployment's files would hold.
"""

import asyncio
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import (
    PASSWORD,
    ROOT,
    LiveServer,
    LiveSite,
    RedisServer,
    wait_for_port,
)
from tests.faults.support import (
    handshake,
    new_http_session,
    on_private_redis,
    sign_in,
)

pytestmark = pytest.mark.slow

SECRET_NAMES = (
    "DJANGO_SECRET_KEY",
    "DASHIFY_WS_TOKEN_SECRET",
    "DASHIFY_SERVICE_TOKEN_SECRET",
)
FORM_CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Logs:
    server: LiveServer
    access_log: Path
    # label -> value of everything that must appear in no log line
    secrets: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        return self.server.log() + self.access_log.read_text(errors="replace")


@pytest.fixture
def logged_site(live_site: LiveSite, private_redis: RedisServer) -> Iterator[Logs]:
    """A daphne process with its own secrets, logging at DEBUG, access log on."""
    values = {name: secrets.token_urlsafe(48) for name in SECRET_NAMES}
    site = on_private_redis(
        live_site, private_redis, DASHIFY_LOG_LEVEL="DEBUG", **values
    )
    port = int(site.env["PORT"])
    access_log = site.tmp / "access.log"
    log_path = site.tmp / "daphne.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "daphne",
            "-b", "127.0.0.1", "-p", str(port),
            "--access-log", str(access_log),
            "dashify.asgi:application",
        ],
        cwd=ROOT,
        env=site.env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = LiveServer(port=port, process=process, log_path=log_path)
    site.servers.append(server)
    wait_for_port(port)
    yield Logs(server, access_log, {f"env {n}": v for n, v in values.items()})


async def _visit(logs: Logs, origin: str) -> None:
    """Walk through the visit, recording every credential it handles."""
    server, found = logs.server, logs.secrets
    found["password"] = PASSWORD

    form = new_http_session().get(server.url + "/accounts/login/", timeout=10)
    form_token = FORM_CSRF_TOKEN.search(form.text)
    assert form_token is not None, "no CSRF token in the login form"
    found["login form CSRF token"] = form_token.group(1)
    found["login page CSRF cookie"] = str(form.cookies[settings.CSRF_COOKIE_NAME])

    alice = await asyncio.to_thread(sign_in, server, "alice")
    found["session key"] = alice.session_key
    found["CSRF cookie"] = alice.csrf_token
    first = await asyncio.to_thread(alice.token)
    second = await asyncio.to_thread(alice.token)
    for label, token in [("first token", first), ("second token", second)]:
        found[label] = token
        for index, segment in enumerate(token.split(".")):
            found[f"{label} segment {index}"] = segment

    assert await handshake(server, first, origin) == "accepted"
    assert await handshake(server, second, "https://evil.example") == (
        HTTPStatus.FORBIDDEN
    )
    assert await handshake(server, first, origin) == HTTPStatus.FORBIDDEN
    logout = await asyncio.to_thread(alice.post, "/accounts/logout/")
    assert logout.status_code == HTTPStatus.FOUND


async def test_a_whole_visit_logs_no_credential_at_debug_level(
    logged_site: Logs, live_site: LiveSite
) -> None:
    await _visit(logged_site, live_site.origin)
    await asyncio.sleep(0.5)  # let the server flush the last lines

    text = logged_site.text()

    assert {label for label, value in logged_site.secrets.items() if value in text} == (
        set()
    )


async def test_the_visit_was_logged_at_debug_level_and_in_the_access_log(
    logged_site: Logs, live_site: LiveSite
) -> None:
    # Guards the test above: an empty log would hold no credential either.
    await _visit(logged_site, live_site.origin)
    await asyncio.sleep(0.5)

    server_log = logged_site.server.log()
    access_log = logged_site.access_log.read_text()

    assert " DEBUG " in server_log
    assert "ws handshake refused reason=bad-origin" in server_log
    assert "ws handshake refused reason=replayed-or-revoked" in server_log
    assert '"POST /accounts/login/" 302' in access_log
    assert '"WSCONNECT /ws/"' in access_log
    assert '"POST /accounts/logout/" 302' in access_log
