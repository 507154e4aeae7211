"""
The system under test, built fresh for each run of the suite: a private
redis-server, a migrated and seeded SQLite database, and the servers the
benchmarks talk to, all on 127.0.0.1 and stopped at the end.

Servers (``Stack.server(kind)``):

``dashify``          daphne serving dashify.asgi:application
``echo``             daphne serving bench.echo_asgi:application
``bare``             the bare websockets server of bench.bare_ws
``dashify-uvicorn``  uvicorn serving dashify.asgi:application
``echo-uvicorn``     uvicorn serving bench.echo_asgi:application

Dashify runs with DJANGO_DEBUG=1 (the built-in development secrets) and
the socket's per-connection rate limit lifted, so that the benchmarks that
send many frames on one socket measure the stack and not the limiter.
"""

import asyncio
import http.client
import json
import os
import secrets
import select
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from bench.common import (
    HOST,
    ROOT,
    STOP_TIMEOUT,
    BenchError,
    CpuPlan,
    Proc,
    free_port,
    start_process,
    start_redis,
)

REDIS_BASE_DB = 12
KEY_PREFIX = "dashify-bench"
# Dashify uses five databases from the base (sessions, cache, tokens,
# channels, jobs); a stock Redis has only 16.
REDIS_DATABASES = 32
CHANNELS_DB = REDIS_BASE_DB + 3
CHANNEL_PREFIX = f"{KEY_PREFIX}:asgi:"
SESSION_COOKIE = "dashify_session"
CSRF_COOKIE = "dashify_csrftoken"
HTTP_TIMEOUT = 30.0
HELPER_TIMEOUT = 120.0
# Frames per second and burst for every Dashify socket in the suite: far
# above anything a benchmark sends.
UNLIMITED_RATE = "1000000"

KINDS = (
    "dashify",
    "echo",
    "bare",
    "dashify-uvicorn",
    "echo-uvicorn",
    "dashify-long-keepalive",
)
# Seconds between daphne's pings of an idle socket for the
# dashify-long-keepalive server (daphne's default is 20).
LONG_KEEPALIVE_S = 120


@dataclass
class HttpAnswer:
    status: int
    cookies: dict[str, str]
    body: bytes
    location: str | None


def http_call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    *,
    cookies: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> HttpAnswer:
    """One request on a kept-alive connection; the body is read in full."""
    sent = dict(headers or {})
    body = None
    if cookies:
        sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if form is not None:
        body = urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=sent)
    response = conn.getresponse()
    payload = response.read()
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        jar.load(header)
    return HttpAnswer(
        status=response.status,
        cookies={name: morsel.value for name, morsel in jar.items()},
        body=payload,
        location=response.getheader("Location"),
    )


@dataclass
class SignedIn:
    """A session opened through the real login form."""

    username: str
    cookies: dict[str, str]

    @property
    def session_key(self) -> str:
        return self.cookies[SESSION_COOKIE]

    @property
    def csrf(self) -> str:
        return self.cookies[CSRF_COOKIE]


@dataclass
class Stack:
    plan: CpuPlan
    workdir: Path
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    site_port: int = field(default_factory=free_port)
    redis_proc: Proc | None = None
    redis_port: int = 0
    servers: dict[str, Proc] = field(default_factory=dict)
    sessions: dict[str, SignedIn] = field(default_factory=dict)
    known_ids: dict[str, dict[str, int]] = field(default_factory=dict)
    minter: subprocess.Popen[str] | None = None
    started: list[Proc] = field(default_factory=list)
    profile_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.profile_dir = self.workdir / "profiles"
        self.profile_dir.mkdir(parents=True, exist_ok=True)

    # --- lifecycle ----------------------------------------------------------------

    @property
    def origin(self) -> str:
        """The one Origin Dashify accepts: the site's, whatever port serves it."""
        return f"http://{HOST}:{self.site_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}/{REDIS_BASE_DB}"

    def env(self, log_level: str = "INFO") -> dict[str, str]:
        """Environment of every Django process, with nothing inherited that
        would point it elsewhere (``make test`` sets REDIS_URL, for one)."""
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("DJANGO_", "DASHIFY_"))
            and name not in {"REDIS_URL", "DATABASE_URL", "PORT"}
        }
        return {
            **inherited,
            "DJANGO_SETTINGS_MODULE": "dashify.settings",
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": f"sqlite:///{self.workdir / 'bench.sqlite3'}",
            "REDIS_URL": self.redis_url,
            "DASHIFY_REDIS_KEY_PREFIX": KEY_PREFIX,
            "DASHIFY_DEMO_PASSWORD": self.password,
            "DASHIFY_ALLOWED_ORIGINS": self.origin,
            "PORT": str(self.site_port),
            "DASHIFY_LOG_LEVEL": log_level,
            "DASHIFY_WS_RATE": UNLIMITED_RATE,
            "DASHIFY_WS_BURST": UNLIMITED_RATE,
            "PYTHONUNBUFFERED": "1",
        }

    def start(self) -> None:
        """Start Redis and prepare the database (migrate, seed the demo)."""
        self.redis_port = free_port()
        self.redis_proc = start_redis(
            self.workdir,
            self.redis_port,
            cpus=self.plan.client,
            databases=REDIS_DATABASES,
        )
        self.started.append(self.redis_proc)
        for command in (["migrate", "--noinput", "-v", "0"], ["seed_demo"]):
            self._manage(*command)

    def _manage(self, *args: str) -> None:
        result = subprocess.run(  # noqa: S603 (an argument list built here)
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env("WARNING"),
            capture_output=True,
            text=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
        if result.returncode:
            raise BenchError(f"manage.py {args[0]} failed:\n{result.stderr[-2000:]}")

    def close(self) -> None:
        if self.minter is not None:
            if self.minter.stdin is not None:
                self.minter.stdin.close()
            try:
                self.minter.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.minter.kill()
                self.minter.wait()
        for proc in reversed(self.started):
            proc.stop()
        self.started.clear()
        self.servers.clear()

    # --- servers ------------------------------------------------------------------

    def server(self, kind: str) -> Proc:
        """The running server of this kind, started on first use."""
        proc = self.servers.get(kind)
        if proc is not None and proc.alive():
            return proc
        return self.restart(kind)

    def fresh(self, kind: str, smoke: bool) -> Proc:
        """A newly started server, except in smoke runs, where time counts more."""
        return self.server(kind) if smoke else self.restart(kind)

    def restart(self, kind: str) -> Proc:
        """A fresh server of this kind (the old one, if any, is stopped)."""
        old = self.servers.pop(kind, None)
        if old is not None:
            old.stop()
            self.started.remove(old)
        port = free_port()
        proc = start_process(
            kind,
            self._argv(kind, port),
            env=self.env(),
            cpus=self.plan.server,
            log_dir=self.workdir,
            port=port,
        )
        self.servers[kind] = proc
        self.started.append(proc)
        return proc

    def _argv(self, kind: str, port: int) -> list[str]:
        python = sys.executable
        apps = {
            "dashify": "dashify.asgi:application",
            "echo": "bench.echo_asgi:application",
        }
        if kind in apps:
            profile = str(self.profile_dir / f"{kind}.prof")
            # Verbosity 0 turns daphne's access log off, as --no-access-log
            # does for uvicorn; Dashify's own logging is unchanged.
            return [
                python, "-m", "bench.profiled", profile, "--",
                "-v", "0", "-b", HOST, "-p", str(port), apps[kind],
            ]  # fmt: skip
        if kind == "dashify-long-keepalive":
            return [
                python, "-m", "daphne", "-v", "0", "-b", HOST, "-p", str(port),
                "--ping-interval", str(LONG_KEEPALIVE_S), "--ping-timeout", "30",
                apps["dashify"],
            ]  # fmt: skip
        if kind.endswith("-uvicorn"):
            app = apps[kind.removesuffix("-uvicorn")]
            # Django's ASGI handler has no lifespan support; "off" keeps
            # uvicorn from logging that at every start.
            return [
                python, "-m", "uvicorn", app, "--no-access-log",
                "--host", HOST, "--port", str(port), "--lifespan", "off",
            ]  # fmt: skip
        if kind == "bare":
            return [python, "-m", "bench.bare_ws", "--port", str(port)]
        raise ValueError(kind)

    def ws_url(self, kind: str, path: str, token: str | None = None) -> str:
        port = self.server(kind).port
        query = f"?token={token}" if token is not None else ""
        return f"ws://{HOST}:{port}{path}{query}"

    def redis_client(self) -> redis.Redis:
        """A client of the channels database (pub/sub ignores the number)."""
        return redis.Redis(
            host=HOST, port=self.redis_port, db=CHANNELS_DB, socket_timeout=10
        )

    # --- sign-in and tokens ---------------------------------------------------------

    def sign_in(self, username: str, *, fresh: bool = False) -> SignedIn:
        """Sign in through the login form of the Dashify server, once."""
        if not fresh and username in self.sessions:
            return self.sessions[username]
        conn = http.client.HTTPConnection(
            HOST, self.server("dashify").port, timeout=HTTP_TIMEOUT
        )
        try:
            page = http_call(conn, "GET", "/accounts/login/")
            csrf = page.cookies[CSRF_COOKIE]
            answer = http_call(
                conn,
                "POST",
                "/accounts/login/",
                cookies={CSRF_COOKIE: csrf},
                form={
                    "username": username,
                    "password": self.password,
                    "csrfmiddlewaretoken": csrf,
                },
            )
        finally:
            conn.close()
        if answer.status != 302 or SESSION_COOKIE not in answer.cookies:
            raise BenchError(f"signing in {username} answered {answer.status}")
        signed_in = SignedIn(
            username,
            {
                SESSION_COOKIE: answer.cookies[SESSION_COOKIE],
                CSRF_COOKIE: answer.cookies.get(CSRF_COOKIE, csrf),
            },
        )
        self.sessions[username] = signed_in
        return signed_in

    def helper(self, request: dict[str, Any]) -> dict[str, Any]:
        """Ask bench.mint (a Django process kept for the suite) for tokens or ids."""
        if self.minter is None or self.minter.poll() is not None:
            self.minter = subprocess.Popen(  # noqa: S603 (an argument list built here)
                [sys.executable, "-m", "bench.mint"],
                cwd=ROOT,
                env=self.env("WARNING"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=(self.workdir / "mint.log").open("ab"),
                text=True,
            )
        stdin, stdout = self.minter.stdin, self.minter.stdout
        if stdin is None or stdout is None:
            raise BenchError("bench.mint has no pipes")
        # The session key goes through a pipe, never argv (visible in ps).
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        # One request, one line back: nothing is left buffered between calls,
        # so waiting on the pipe itself is safe.
        readable, _, _ = select.select([stdout], [], [], HELPER_TIMEOUT)
        if not readable:
            self.minter.kill()
            raise BenchError(f"bench.mint did not answer in {HELPER_TIMEOUT:g} s")
        line = stdout.readline()
        if not line:
            log = (self.workdir / "mint.log").read_text(errors="replace")
            raise BenchError(f"bench.mint failed:\n{log[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def mint(self, username: str, counts: dict[str, int]) -> dict[str, list[str]]:
        """
        Tokens for ``username``'s session, by kind: "valid" (issued and
        recorded as Dashify's view would), or one of the forged kinds that
        bench.mint knows.
        """
        session = self.sign_in(username)
        answer = self.helper(
            {"username": username, "session_key": session.session_key, "mint": counts}
        )
        tokens: dict[str, list[str]] = answer["tokens"]
        return tokens

    def ids(self, username: str) -> dict[str, int]:
        """Room, board and first card of the user's tenant."""
        if username not in self.known_ids:
            answer = self.helper({"username": username, "ids": True})
            self.known_ids[username] = answer["ids"]
        return self.known_ids[username]


async def open_ws(
    url: str, origin: str | None, timeout: float | None
) -> ClientConnection:
    """Open a WebSocket the way every benchmark client does."""
    return await connect(
        url,
        origin=Origin(origin) if origin else None,
        # Daphne negotiates no compression; the bare server would, which
        # would make the ceiling pay for work the others skip.
        compression=None,
        proxy=None,
        open_timeout=timeout,
        # The servers ping idle sockets; the client adds no traffic of its own.
        ping_interval=None,
        close_timeout=5,
        max_size=2**22,
    )


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="dashify-bench-")


async def expect_frame(websocket: ClientConnection, needle: str, timeout: float) -> str:
    """Return the first text frame containing ``needle``, skipping up to 20 others."""
    for _ in range(20):
        message = await asyncio.wait_for(websocket.recv(), timeout)
        if isinstance(message, str) and needle in message:
            return message
    raise BenchError(f"no frame with {needle!r} among 20")


async def open_many(
    count: int,
    open_one: Callable[[int], Awaitable[ClientConnection]],
    *,
    concurrency: int,
    timeout: float,
) -> tuple[list[ClientConnection], Counter[str]]:
    """
    Open ``count`` sockets, at most ``concurrency`` at a time; return those
    that opened and the reasons the others did not.
    """
    gate = asyncio.Semaphore(concurrency)

    async def guarded(index: int) -> ClientConnection:
        async with gate:
            return await open_one(index)

    results = await asyncio.wait_for(
        asyncio.gather(*(guarded(i) for i in range(count)), return_exceptions=True),
        timeout,
    )
    opened = [r for r in results if isinstance(r, ClientConnection)]
    failures = Counter(
        type(r).__name__ for r in results if isinstance(r, BaseException)
    )
    return opened, failures


async def close_all(sockets: list[ClientConnection], timeout: float = 60.0) -> None:
    """Close every socket at once (each waits for the server's close frame)."""
    if sockets:
        await asyncio.wait_for(
            asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True),
            timeout,
        )
