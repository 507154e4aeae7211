"""
Fixtures shared by the whole suite.

Everything here is real: the Redis named by REDIS_URL (``make test`` starts
a private one), the test database, daphne processes for end-to-end tests.
The suite writes only keys under its own prefix (tests/settings.py) and
deletes only those.
"""

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import pytest
import redis
from django.conf import settings
from django.test import Client

from accounts.models import Tenant, User

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"


def _delete_own_keys() -> None:
    pattern = f"{settings.DASHIFY_REDIS_KEY_PREFIX}:*"
    for url in set(settings.DASHIFY_REDIS_URLS.values()):
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


# Loggers of the suite's own clients (the attacker's side of the wire):
# websockets and urllib3 log the URLs they request, tokens included.
CLIENT_LOGGERS = ("websockets.client", "urllib3", "selenium", "asyncio")
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


class RecordCapture(logging.Handler):
    """Keep the text of every log record the test process produces."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(CLIENT_LOGGERS):
            return
        try:
            text = record.getMessage()
        except Exception:  # a broken record is its own bug, not a leak
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + repr(record.exc_info[1])
        self.lines.append((record.name, text))


@pytest.fixture(scope="session", autouse=True)
def no_credential_in_any_log_record() -> Iterator[None]:
    """
    Capture every record logged in the test process, at DEBUG, for the
    whole run, and fail the run if any holds a credential: a JWT, a
    secret, or a session or CSRF cookie value. Server subprocesses'
    logs are checked by the tests that start them.
    """
    capture = RecordCapture()
    root = logging.getLogger()
    previous_level = root.level
    # First in line: the console handler's redaction filter rewrites records
    # in place, and the capture must see what the code really logged.
    root.handlers.insert(0, capture)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(capture)
    root.setLevel(previous_level)

    secrets = [
        settings.SECRET_KEY,
        settings.DASHIFY_WS_TOKEN_SECRET,
        settings.DASHIFY_SERVICE_TOKEN_SECRET,
    ]
    leaks = [
        f"{name}: {text[:200]}"
        for name, text in capture.lines
        if JWT_SHAPE.search(text)
        or any(secret in text for secret in secrets)
        or re.search(
            rf"({settings.SESSION_COOKIE_NAME}|{settings.CSRF_COOKIE_NAME})=\w", text
        )
    ]
    assert not leaks, "credentials in log records:\n" + "\n".join(leaks[:20])
    assert capture.lines, "the log capture saw no record at all"


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    """Start and end every test with none of the suite's keys in Redis."""
    _delete_own_keys()
    yield
    _delete_own_keys()


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str, tenant_slug: str = "acme", **extra: object) -> User:
        tenant, _ = Tenant.objects.get_or_create(
            slug=tenant_slug, defaults={"name": tenant_slug.title()}
        )
        user = User(username=username, tenant=tenant, **extra)
        user.set_password(PASSWORD)
        user.save()
        return user

    return make


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", "acme")


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("bob", "acme")


@pytest.fixture
def carol(make_user: Callable[..., User]) -> User:
    return make_user("carol", "globex")


def signed_in_client(user: User, user_agent: str = "pytest") -> Client:
    """A test client signed in through the real login view."""
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=user_agent)
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


class CSRFHeader(TypedDict):
    HTTP_X_CSRFTOKEN: str


def csrf_headers(client: Client) -> CSRFHeader:
    return {"HTTP_X_CSRFTOKEN": client.cookies[settings.CSRF_COOKIE_NAME].value}


def session_key_of(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def session_exists(session_key: str) -> bool:
    from django.core.cache import caches

    from accounts.sessions import SessionStore

    cache = caches[settings.SESSION_CACHE_ALIAS]
    return cache.get(SessionStore().raw_cache_key(session_key)) is not None


def mint_token(client: Client) -> str:
    response = client.post("/accounts/ws-token/", **csrf_headers(client))
    assert response.status_code == 200, response.content
    return response.json()["token"]


# --- processes -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@dataclass
class RedisServer:
    """A private redis-server that a test may stop and start at will."""

    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.data_dir),
                "--save", "",
                "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for fault tests that stop it."""
    server = RedisServer(port=free_port(), data_dir=tmp_path)
    server.start()
    yield server
    server.stop()


@dataclass
class LiveServer:
    """A daphne process serving Dashify on 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class LiveSite:
    """A database and Redis shared by one or more live server processes."""

    env: dict[str, str]
    tmp: Path
    servers: list[LiveServer]

    def start_server(self, asgi_server: str = "daphne") -> LiveServer:
        """Start daphne (or uvicorn, the documented alternative) on a port."""
        port = int(self.env["PORT"]) if not self.servers else free_port()
        log_path = self.tmp / f"{asgi_server}-{port}.log"
        commands = {
            "daphne": [
                "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
            ],
            "uvicorn": [
                "-m", "uvicorn", "--no-access-log", "--lifespan", "off",
                "--host", "127.0.0.1", "--port", str(port),
            ],
        }  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, *commands[asgi_server], "dashify.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        server = LiveServer(port=port, process=process, log_path=log_path)
        self.servers.append(server)
        wait_for_port(port)
        return server

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout


@pytest.fixture
def live_site(tmp_path: Path) -> Iterator[LiveSite]:
    """
    A migrated, seeded SQLite database and the suite's Redis, ready for
    daphne processes (``live_site.start_server()``). All of them accept
    the first server's origin, as processes behind one address would.
    """
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'live.sqlite3'}",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "DASHIFY_REDIS_KEY_PREFIX": settings.DASHIFY_REDIS_KEY_PREFIX,
        "DASHIFY_DEMO_PASSWORD": PASSWORD,
        "DASHIFY_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        "DASHIFY_LOG_LEVEL": "DEBUG",
        "PORT": str(port),
    }
    site = LiveSite(env=env, tmp=tmp_path, servers=[])
    site.manage("migrate", "--noinput", "-v", "0")
    site.manage("seed_demo")
    yield site
    for server in site.servers:
        server.stop()
