"""
The cookies and headers a browser gets under production settings
(DJANGO_DEBUG=0 and real secrets), from a sign-in in a fresh interpreter:
settings are read once per process, so only a subprocess shows what a
deployment sends.

The sign-in goes through the test client inside ``manage.py shell``, as a
request that arrived over HTTPS at the proxy (X-Forwarded-Proto: https,
which the production settings trust). It posts the form without fetching
it first: the login page links static files through the manifest that
``collectstatic`` builds at deploy time, and the CSRF cookie is issued
anew by the sign-in anyway.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, ROOT, RedisServer

pytestmark = pytest.mark.slow

SECRET_NAMES = (
    "DJANGO_SECRET_KEY",
    "DASHIFY_WS_TOKEN_SECRET",
    "DASHIFY_SERVICE_TOKEN_SECRET",
)

SIGN_IN = f"""
import json

from django.test import Client

from accounts.models import Tenant, User

user = User(username="alice", tenant=Tenant.objects.create(slug="acme", name="Acme"))
user.set_password({PASSWORD!r})
user.save()

response = Client(headers={{"X-Forwarded-Proto": "https"}}).post(
    "/accounts/login/", {{"username": "alice", "password": {PASSWORD!r}}}
)
plain = Client().get("/accounts/login/")
print(json.dumps({{
    "status": response.status_code,
    "cookies": {{
        name: {{
            "secure": bool(morsel["secure"]),
            "httponly": bool(morsel["httponly"]),
            "samesite": morsel["samesite"],
            "path": morsel["path"],
            "domain": morsel["domain"],
        }}
        for name, morsel in response.cookies.items()
    }},
    "hsts": response.headers.get("Strict-Transport-Security"),
    "plain_http": [plain.status_code, plain.headers.get("Location")],
}}))
"""


def _production_env(tmp: Path, redis_url: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "DASHIFY_"))
    }
    # secrets.token_urlsafe(48) gives 64 characters, as the startup error
    # message advises.
    env.update({name: secrets.token_urlsafe(48) for name in SECRET_NAMES})
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "dashify.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "DATABASE_URL": f"sqlite:///{tmp / 'production.sqlite3'}",
            "REDIS_URL": redis_url,
        }
    )
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def signed_in(
    tmp_path_factory: pytest.TempPathFactory, module_redis: RedisServer
) -> dict[str, Any]:
    env = _production_env(tmp_path_factory.mktemp("production"), module_redis.url)
    _manage(env, "migrate", "--noinput", "-v", "0")
    answer = json.loads(_manage(env, "shell", "-c", SIGN_IN).strip().splitlines()[-1])
    assert answer["status"] == 302, answer
    return answer


def test_the_session_cookie_is_host_prefixed_secure_http_only_and_lax(
    signed_in: dict[str, Any],
) -> None:
    assert signed_in["cookies"]["__Host-dashify_session"] == {
        "secure": True,
        "httponly": True,
        "samesite": "Lax",
        "path": "/",
        "domain": "",
    }


def test_the_csrf_cookie_is_host_prefixed_and_secure(
    signed_in: dict[str, Any],
) -> None:
    # Not HttpOnly: the dashboard's script reads it for the X-CSRFToken
    # header, which is how Django's CSRF protection is meant to be used.
    assert signed_in["cookies"]["__Host-dashify_csrftoken"] == {
        "secure": True,
        "httponly": False,
        "samesite": "Lax",
        "path": "/",
        "domain": "",
    }


def test_no_cookie_without_the_host_prefix_is_set(signed_in: dict[str, Any]) -> None:
    assert sorted(signed_in["cookies"]) == [
        "__Host-dashify_csrftoken",
        "__Host-dashify_session",
    ]


def test_the_answer_carries_hsts_for_a_year_with_subdomains_and_preload(
    signed_in: dict[str, Any],
) -> None:
    assert signed_in["hsts"] == "max-age=31536000; includeSubDomains; preload"


def test_plain_http_is_redirected_to_https(signed_in: dict[str, Any]) -> None:
    assert signed_in["plain_http"] == [301, "https://testserver/accounts/login/"]
