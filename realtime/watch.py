"""
Session liveness for the open sockets of one server process.

Revocation ends sockets at once: accounts.services deletes the session and
publishes ``session.ended`` to its personal group (realtime.receivers).
What that path can miss: a revocation published while this process was
reconnecting to Redis, a session that expired on its own, a Redis that
restarted empty. So every DASHIFY_WS_SESSION_CHECK seconds, and at once
after the hub subscribed again to a personal channel, the watch asks
Redis whether each session with a socket here is still signed in: one
pipelined round trip per few thousand sockets, not a timer per socket.
"""

import asyncio
import contextlib
import logging
import weakref

from django.conf import settings

from accounts.services import asessions_alive
from realtime import fanout, groups

logger = logging.getLogger("dashify.realtime")

# Sessions asked about per round trip.
BATCH = 2000

_watches: "weakref.WeakKeyDictionary[fanout.Hub, asyncio.Task[None]]" = (
    weakref.WeakKeyDictionary()
)


def ensure_running() -> None:
    """Start the watch of the running event loop's hub unless it runs."""
    hub = fanout.hub()
    task = _watches.get(hub)
    if task is None or task.done():
        _watches[hub] = asyncio.get_running_loop().create_task(_run(hub))


async def _run(hub: fanout.Hub) -> None:
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settings.DASHIFY_WS_SESSION_CHECK):
                await hub.resubscribed.wait()
        hub.resubscribed.clear()
        try:
            if not await sweep(hub):
                return
        except Exception:
            logger.exception("session check failed")


async def sweep(hub: fanout.Hub) -> int:
    """End the local sockets of sessions that ended; return how many sessions."""
    prefix = groups.session_group("")
    names = hub.groups_named(prefix)
    for start in range(0, len(names), BATCH):
        batch = names[start : start + BATCH]
        alive = await asessions_alive([name[len(prefix) :] for name in batch])
        if alive is None:
            # Redis cannot tell: keep the sockets, ask again next time.
            logger.warning("session check skipped: Redis unreachable")
            break
        for name, signed_in in zip(batch, alive, strict=True):
            if not signed_in:
                hub.dispatch_event(name, {"type": "session.ended", "reason": "expired"})
    return len(names)
