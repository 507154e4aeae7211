"""
Helpers for the accounts tests (and the Redis fault tests, which sign in
the same way): signing in with chosen client details, reading the sessions
tables, and moving every Redis purpose onto a server of the test's own.
"""

import copy
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.test import Client, override_settings

from accounts.models import User
from tests.conftest import PASSWORD

CHROME_ON_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
FIREFOX_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
)


def sign_in(user: User, **client_defaults: Any) -> Client:
    """
    Sign ``user`` in through the real login view with a CSRF-enforcing
    client; ``client_defaults`` become request META (HTTP_USER_AGENT,
    REMOTE_ADDR, ...).
    """
    client = Client(enforce_csrf_checks=True, **client_defaults)
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        {
            "username": user.username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": client.cookies[settings.CSRF_COOKIE_NAME].value,
        },
    )
    assert response.status_code == 302, response.content
    return client


def csrf_token(client: Client) -> str:
    return client.cookies[settings.CSRF_COOKIE_NAME].value


def csrf_header(client: Client) -> dict[str, str]:
    """The header a script sends with the CSRF token (``headers=``)."""
    return {"X-CSRFToken": csrf_token(client)}


def client_with_session_cookie(session_key: str) -> Client:
    """A fresh client that carries nothing but the given session cookie."""
    client = Client(enforce_csrf_checks=True)
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    return client


# --- reading the sessions tables ---------------------------------------------------


@dataclass
class SessionRow:
    cells: list[str] = field(default_factory=list)
    handle: str | None = None
    is_marked_current: bool = False

    @property
    def device(self) -> str:
        return self.cells[0]

    @property
    def ip_address(self) -> str:
        return self.cells[1]

    @property
    def signed_in(self) -> str:
        return self.cells[2]

    @property
    def last_seen(self) -> str:
        return self.cells[3]


class _SessionTableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[SessionRow] = []
        self._in_table = False
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table" and attributes.get("id") == "session-list":
            self._in_table = True
        elif self._in_table and tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append(
                SessionRow(is_marked_current=attributes.get("class") == "current")
            )
        elif self._in_body and tag == "td":
            self._cell = []
        elif self._in_body and tag == "input" and attributes.get("name") == "session":
            self.rows[-1].handle = attributes.get("value")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].cells.append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


class Page(Protocol):
    status_code: int
    content: bytes


def session_rows(response: Page) -> list[SessionRow]:
    """Return the rows of the ``session-list`` table of a sessions page."""
    assert response.status_code == 200, response.status_code
    parser = _SessionTableParser()
    parser.feed(response.content.decode())
    return parser.rows


# --- a Redis of the test's own -----------------------------------------------------


def _moved(url: str, server_url: str) -> str:
    # Keep the database index so that the product's layout (one index per
    # purpose) is what the test exercises, only on another server.
    return urlsplit(url)._replace(netloc=urlsplit(server_url).netloc).geturl()


def redis_settings_on(server_url: str) -> override_settings:
    """
    Return settings that send every Redis purpose (both caches, the raw
    clients and the channel layer) to the server at ``server_url``.
    """
    caches: dict[str, dict[str, Any]] = copy.deepcopy(settings.CACHES)
    for alias in ("default", "sessions"):
        caches[alias]["LOCATION"] = _moved(caches[alias]["LOCATION"], server_url)
    channel_layers: dict[str, Any] = copy.deepcopy(settings.CHANNEL_LAYERS)
    channel_layers["default"]["CONFIG"]["hosts"] = [
        _moved(host, server_url)
        for host in channel_layers["default"]["CONFIG"]["hosts"]
    ]
    return override_settings(
        CACHES=caches,
        DASHIFY_REDIS_URLS={
            purpose: _moved(url, server_url)
            for purpose, url in settings.DASHIFY_REDIS_URLS.items()
        },
        CHANNEL_LAYERS=channel_layers,
    )
