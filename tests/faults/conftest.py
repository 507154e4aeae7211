"""Fixtures of the live fault tests: daphne on a Redis the test may break."""

import pytest

from tests.conftest import LiveServer, LiveSite, RedisServer
from tests.faults.support import on_private_redis


@pytest.fixture
def site(live_site: LiveSite, private_redis: RedisServer) -> LiveSite:
    """
    The live site on a Redis of the test's own, with sockets that check
    their session every second.
    """
    return on_private_redis(live_site, private_redis, DASHIFY_WS_SESSION_CHECK="1")


@pytest.fixture
def server(site: LiveSite) -> LiveServer:
    return site.start_server()
