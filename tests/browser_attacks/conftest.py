"""
A live site shared by every test of a module: a daphne process on a
migrated, seeded SQLite database and a redis-server of the module's own.

Sharing one server keeps the attack tables cheap (dozens of cases, one
startup); the private Redis keeps its sessions out of reach of the suite's
per-test key cleanup, which works on the shared Redis.
"""

import os
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import override_settings

from tests.conftest import (
    PASSWORD,
    LiveServer,
    LiveSite,
    RedisServer,
    free_port,
)


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), data_dir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def attack_site(
    tmp_path_factory: pytest.TempPathFactory, module_redis: RedisServer
) -> Iterator[LiveSite]:
    """Like tests.conftest.live_site, for a whole module, on module_redis."""
    tmp = tmp_path_factory.mktemp("site")
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp / 'live.sqlite3'}",
        "REDIS_URL": module_redis.url,
        "DASHIFY_REDIS_KEY_PREFIX": settings.DASHIFY_REDIS_KEY_PREFIX,
        "DASHIFY_DEMO_PASSWORD": PASSWORD,
        "DASHIFY_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        "DASHIFY_LOG_LEVEL": "DEBUG",
        "PORT": str(port),
    }
    site = LiveSite(env=env, tmp=tmp, servers=[])
    site.manage("migrate", "--noinput", "-v", "0")
    site.manage("seed_demo")
    yield site
    for server in site.servers:
        server.stop()


@pytest.fixture(scope="module")
def attack_server(attack_site: LiveSite) -> LiveServer:
    return attack_site.start_server()


@pytest.fixture
def fast_password_hashing() -> Iterator[None]:
    """
    Hash passwords with a cheap hasher for tests that sign many people in:
    Argon2 costs about half a second per sign-in here, and no test that
    uses this is about password storage.
    """
    with override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]
    ):
        yield
