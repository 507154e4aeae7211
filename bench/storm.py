"""
5. Connect storm: N sockets opened at the same instant against one fresh
daphne process, then all closed at once.

Every connection attempt starts together (no client-side limit on
concurrency), each with a client-side timeout. Attempts are counted as
accepted (the first frame arrived), HTTP 500, or other (with the reason:
another HTTP status, a timeout, a reset). The server's log is read for
refusal reasons and errors.

What the storm leaves in Redis is read with PUBSUB, under the suite's key
prefix: Channels' pub/sub layer (the echo app) subscribes one channel per
socket and, per process, one per group; Dashify's own fan-out
(realtime.fanout) subscribes only per group and process. Once every client
has closed, both counts must drop back to what they were before the storm;
a stale subscription would be a socket the server never cleaned up.
"""

import asyncio
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass

import redis
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bench.common import (
    Budget,
    Figures,
    Metric,
    Proc,
    Report,
    Target,
    percentile,
    settled_cpu,
)
from bench.handshake import rotated
from bench.stack import CHANNEL_PREFIX, KEY_PREFIX, Stack, close_all, open_ws

NAME = "storm"
TITLE = "5. Connect storm and mass disconnect"
SUMMARY = (
    "N connection attempts fired at the same instant at one fresh daphne "
    "process, each with a client-side timeout; then every accepted socket "
    "closed at once. *Socket channels* (Channels' layer: one per socket) and "
    "*group subscribers* (PUBSUB NUMSUB of the group channels, Channels' and "
    "`realtime.fanout`'s): at the peak, and what remains after the disconnect "
    "(minus what there was before the storm), read until it drains or the "
    "wait ends."
)
ECHO = "echo storm (daphne)"
DASHIFY = "Dashify storm (daphne)"
EVERY_CHANNEL = f"{KEY_PREFIX}:*"
# Group channels: Channels' pub/sub layer, and Dashify's realtime.fanout.
GROUP_PATTERNS = (f"{CHANNEL_PREFIX}__group__*", f"{KEY_PREFIX}:fan:*")
LOG_REASON = re.compile(r"ws handshake refused reason=(\S+)")

METRICS = [
    Metric("attempts", "attempts", 0),
    Metric("accepted", "accepted", 0),
    Metric("http_500", "HTTP 500", 0),
    Metric("other", "other", 0),
    Metric("p50_ms", "p50 ms (accepted)", 0),
    Metric("p99_ms", "p99 ms (accepted)", 0, ratio=True),
    Metric("duration_s", "storm s", 2, ratio=True),
    Metric("cpu_us", "server CPU µs/attempt", 0, ratio=True),
    Metric("peak_channels", "socket channels at peak", 0),
    Metric("peak_group_subs", "group subscribers at peak", 0),
    Metric("stale_channels", "socket channels left", 0),
    Metric("stale_group_subs", "group subscribers left", 0),
    Metric("drain_s", "drain s", 2),
]


@dataclass(frozen=True)
class Sizes:
    sockets: int
    runs: int
    timeout: float
    drain_wait: float


FULL = Sizes(sockets=1000, runs=3, timeout=30.0, drain_wait=20.0)
SMOKE = Sizes(sockets=10, runs=1, timeout=10.0, drain_wait=5.0)


@dataclass
class Attempt:
    outcome: str
    latency: float | None = None
    websocket: ClientConnection | None = None


async def attempt(url: str, origin: str, timeout: float) -> Attempt:
    started = time.perf_counter()
    websocket = None
    try:
        async with asyncio.timeout(timeout):
            websocket = await open_ws(url, origin, None)
            await websocket.recv()
    except InvalidStatus as error:
        return Attempt(f"http-{error.response.status_code}")
    except TimeoutError:
        outcome = "client-timeout"
    except OSError as error:
        outcome = f"{type(error).__name__}"
    except (InvalidHandshake, ConnectionClosed) as error:
        outcome = type(error).__name__
    else:
        return Attempt("accepted", time.perf_counter() - started, websocket)
    if websocket is not None:
        await websocket.close()
    return Attempt(outcome)


def subscriptions(client: redis.Redis) -> tuple[int, int]:
    """(per-socket channels, group subscribers) under the suite's prefix."""
    everything = client.pubsub_channels(EVERY_CHANNEL)
    groups = {name for p in GROUP_PATTERNS for name in client.pubsub_channels(p)}
    subscribers = sum(n for _, n in client.pubsub_numsub(*groups)) if groups else 0
    return len(everything) - len(groups), subscribers


async def storm_once(
    stack: Stack, server: Proc, urls: list[str], sizes: Sizes
) -> tuple[Figures, Counter[str]]:
    client = stack.redis_client()
    try:
        channels_before, groups_before = subscriptions(client)
        log_offset = server.log_size()
        cpu_before = server.cpu()
        started = time.perf_counter()
        # All at once: the point is what the server does with a burst.
        attempts = await asyncio.wait_for(
            asyncio.gather(
                *(attempt(url, stack.origin, sizes.timeout) for url in urls)
            ),
            sizes.timeout + 30,
        )
        duration = time.perf_counter() - started
        cpu = await settled_cpu(server) - cpu_before
        peak_channels, peak_groups = subscriptions(client)

        sockets = [a.websocket for a in attempts if a.websocket is not None]
        await close_all(sockets)
        closed_at = time.monotonic()
        deadline = closed_at + sizes.drain_wait
        while True:
            channels, groups = subscriptions(client)
            drained = channels <= channels_before and groups <= groups_before
            if drained or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        drain = time.monotonic() - closed_at
    finally:
        client.close()

    outcomes = Counter(a.outcome for a in attempts)
    latencies = [a.latency for a in attempts if a.latency is not None]
    log = server.log_since(log_offset)
    details = outcomes + Counter(f"log: refused {r}" for r in LOG_REASON.findall(log))
    details["log: ERROR lines"] += log.count(" ERROR ")
    accepted = outcomes["accepted"]
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    figures: Figures = {
        "attempts": len(urls),
        "accepted": accepted,
        "http_500": outcomes["http-500"],
        "other": len(urls) - accepted - outcomes["http-500"],
        "p50_ms": p50 * 1e3 if p50 is not None else None,
        "p99_ms": p99 * 1e3 if p99 is not None else None,
        "duration_s": duration,
        "cpu_us": cpu / len(urls) * 1e6 if urls else None,
        "peak_channels": peak_channels - channels_before,
        "peak_group_subs": peak_groups - groups_before,
        "stale_channels": max(0, channels - channels_before),
        "stale_group_subs": max(0, groups - groups_before),
        "drain_s": drain if drained else None,
    }
    return figures, details


def run(stack: Stack, *, smoke: bool, budget: Budget) -> Report:
    sizes = SMOKE if smoke else FULL
    report = Report(NAME, TITLE, SUMMARY, METRICS, sizes=asdict(sizes))
    report.row(ECHO)
    report.row(DASHIFY, baseline=ECHO)
    report.targets = [
        Target(
            f"Dashify: all {sizes.sockets:,} attempts accepted",
            DASHIFY,
            "accepted",
            ">=",
            sizes.sockets,
        ),
        Target("Dashify: no HTTP 500", DASHIFY, "http_500", "==", 0),
        Target(
            "Dashify: no stale channels after disconnect",
            DASHIFY,
            "stale_channels",
            "==",
            0,
        ),
        Target("Dashify: group NUMSUB back to 0", DASHIFY, "stale_group_subs", "==", 0),
    ]
    tokens = stack.mint("bob", {"valid": sizes.sockets * sizes.runs})["valid"]
    # Fresh processes: the storm should meet a server in its starting state.
    servers = {DASHIFY: stack.fresh("dashify", smoke), ECHO: stack.fresh("echo", smoke)}
    asyncio.run(measure(stack, report, sizes, budget, servers, tokens))
    return report


async def measure(
    stack: Stack,
    report: Report,
    sizes: Sizes,
    budget: Budget,
    servers: dict[str, Proc],
    tokens: list[str],
) -> None:
    details: dict[str, Counter[str]] = {label: Counter() for label in servers}
    for run_index in range(sizes.runs):
        if budget.spent:
            report.notes.append(f"Time budget spent after {run_index} runs.")
            break
        for label in rotated(list(servers), run_index):
            if label == DASHIFY:
                batch = [tokens.pop() for _ in range(sizes.sockets)]
                urls = [stack.ws_url("dashify", "/ws/", token) for token in batch]
            else:
                urls = [stack.ws_url("echo", "/ws/echo/")] * sizes.sockets
            figures, seen = await storm_once(stack, servers[label], urls, sizes)
            report.record(run_index, label, figures)
            details[label].update(seen)
            if not servers[label].alive():
                raise RuntimeError(f"{label}: the server died during the storm")
    report.extra["outcomes"] = {label: dict(c) for label, c in details.items()}
    for label, seen in details.items():
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(seen.items()))
        report.notes.append(f"{label}, all runs: {shown}.")
