"""
1. Authenticated handshake through Dashify's real stack, against the
unauthenticated echo handshake on the same ASGI server (daphne) and channel
layer, with the bare websockets server as the ceiling.

One handshake: open the socket, receive the first frame (Dashify's
``hello``, the echo app's one-line hello), close. Tokens are minted before
timing starts, by bench.mint for a session opened through the login form.

Each run measures every server in turn (the order rotates between runs):
a throughput phase of many handshakes, several at a time, for the rate and
the server CPU per handshake, then a latency phase of one handshake at a
time for p50/p99, so the latencies are not queueing delays.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bench.common import (
    Budget,
    Figures,
    Metric,
    Proc,
    Report,
    Target,
    bounded,
    percentile,
    profiled,
    settled_cpu,
)
from bench.stack import Stack, open_ws

NAME = "handshake"
TITLE = "1. Authenticated handshake"
SUMMARY = (
    "Open a socket, receive the first frame, close. Rate and server CPU come "
    "from a phase of many handshakes at once; p50/p99 from a phase of one at a "
    "time. Dashify: `dashify.asgi:application` (Origin check and token "
    "verified in the process, session and user groups joined in the process, "
    "token spent and unread count read in one Redis round trip, `hello` "
    "sent). Echo: `bench/echo_asgi.py`, unauthenticated, same daphne and "
    "channel layer. Bare: the `websockets` server, no framework."
)
ECHO = "echo handshake (daphne)"
DASHIFY = "Dashify handshake (daphne)"
BARE = "bare websockets handshake"
OP_TIMEOUT = 15.0

# Functions whose share of the event loop's time the profile reports.
FOCUS = (
    "realtime.authenticate",
    "accounts.verify_ws_token",
    "accounts.aspend_ws_token",
    "realtime.connect",
    "realtime.disconnect",
    "realtime.join",
    "channels.websocket_connect",
    "channels.websocket_disconnect",
    "channels_redis.new_channel",
    "channels.aclose_old_connections",
    "logging.handle",
    "autobahn._connectionMade",
    "pprint.pformat",
)

METRICS = [
    Metric("rate", "handshakes/s", 0, ratio=True),
    Metric("p50_ms", "p50 ms", 2),
    Metric("p99_ms", "p99 ms", 2, ratio=True),
    Metric("cpu_us", "server CPU µs/op", 0, ratio=True),
    Metric("thread_cpu_us", "of which worker threads", 0),
]


@dataclass(frozen=True)
class Sizes:
    throughput: int
    latency: int
    concurrency: int
    runs: int
    warm_up: int
    profiled: int


FULL = Sizes(
    throughput=600, latency=200, concurrency=8, runs=3, warm_up=30, profiled=300
)
SMOKE = Sizes(throughput=12, latency=6, concurrency=3, runs=1, warm_up=2, profiled=5)


async def handshake_once(url: str, origin: str, read_first: bool) -> tuple[str, float]:
    """Open, read the first frame, close; return the outcome and latency."""
    started = time.perf_counter()
    try:
        websocket = await open_ws(url, origin, OP_TIMEOUT)
    except InvalidStatus as error:
        return f"http-{error.response.status_code}", time.perf_counter() - started
    except (OSError, TimeoutError, InvalidHandshake) as error:
        return type(error).__name__, time.perf_counter() - started
    try:
        if read_first:
            await asyncio.wait_for(websocket.recv(), OP_TIMEOUT)
        latency = time.perf_counter() - started
        outcome = "ok"
    except (ConnectionClosed, TimeoutError) as error:
        latency, outcome = time.perf_counter() - started, type(error).__name__
    finally:
        await websocket.close()
    return outcome, latency


@dataclass
class Batch:
    outcomes: Counter[str]
    latencies: list[float]
    elapsed: float
    cpu: float
    # The part spent outside the event loop's thread (Django's thread pool).
    thread_cpu: float


async def run_batch(
    server: Proc,
    urls: Sequence[str],
    *,
    origin: str,
    concurrency: int,
    expect: str = "ok",
    seconds: float = 60.0,
) -> Batch:
    """
    One handshake per URL, ``concurrency`` at a time, until the URLs or
    ``seconds`` run out. Latencies are kept for the expected outcome only.
    """
    pending: Iterator[str] = iter(urls)
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        for url in pending:
            if time.monotonic() > deadline:
                return
            outcome, latency = await handshake_once(url, origin, expect == "ok")
            outcomes[outcome] += 1
            if outcome == expect:
                latencies.append(latency)

    cpu_before, threads_before = server.cpu(), server.thread_cpu()
    started = time.perf_counter()
    await bounded(
        asyncio.gather(*(worker() for _ in range(concurrency))),
        seconds + 2 * OP_TIMEOUT,
        f"handshakes on {server.name}",
    )
    elapsed = time.perf_counter() - started
    cpu = await settled_cpu(server) - cpu_before
    thread_cpu = max(0.0, server.thread_cpu() - threads_before)
    return Batch(outcomes, latencies, elapsed, cpu, thread_cpu)


async def measure(
    server: Proc,
    throughput_urls: Sequence[str],
    latency_urls: Sequence[str],
    *,
    origin: str,
    concurrency: int,
    expect: str = "ok",
) -> tuple[Figures, Counter[str]]:
    """Rate, latencies and CPU per handshake of one server in one run."""
    load = await run_batch(
        server, throughput_urls, origin=origin, concurrency=concurrency, expect=expect
    )
    single = await run_batch(
        server, latency_urls, origin=origin, concurrency=1, expect=expect
    )
    done = load.outcomes[expect] + single.outcomes[expect]
    p50, p99 = percentile(single.latencies, 0.5), percentile(single.latencies, 0.99)
    figures: Figures = {
        "rate": load.outcomes[expect] / load.elapsed if load.elapsed else None,
        "p50_ms": p50 * 1e3 if p50 is not None else None,
        "p99_ms": p99 * 1e3 if p99 is not None else None,
        "cpu_us": (load.cpu + single.cpu) / done * 1e6 if done else None,
        "thread_cpu_us": (load.thread_cpu + single.thread_cpu) / done * 1e6
        if done
        else None,
    }
    return figures, load.outcomes + single.outcomes


def rotated(items: Sequence[str], run: int) -> list[str]:
    """The items in an order that changes from run to run."""
    shift = run % len(items)
    return [*items[shift:], *items[:shift]]


def run(stack: Stack, *, smoke: bool, budget: Budget) -> Report:
    sizes = SMOKE if smoke else FULL
    report = Report(NAME, TITLE, SUMMARY, METRICS, sizes=asdict(sizes))
    report.row(ECHO)
    report.row(DASHIFY, baseline=ECHO)
    report.row(BARE, baseline=ECHO)
    report.targets = [
        Target("Dashify rate ≥ 85% of echo", DASHIFY, "rate", ">=", 0.85, ECHO),
        Target("Dashify p99 ≤ 1.5× echo", DASHIFY, "p99_ms", "<=", 1.5, ECHO),
    ]

    needed = (sizes.throughput + sizes.latency) * sizes.runs
    needed += sizes.warm_up + sizes.profiled
    tokens = stack.mint("alice", {"valid": needed})["valid"]
    servers = {
        ECHO: stack.server("echo"),
        DASHIFY: stack.server("dashify"),
        BARE: stack.server("bare"),
    }
    url_makers: dict[str, Callable[[], str]] = {
        ECHO: lambda: stack.ws_url("echo", "/ws/echo/"),
        DASHIFY: lambda: stack.ws_url("dashify", "/ws/", tokens.pop()),
        BARE: lambda: stack.ws_url("bare", "/echo"),
    }
    asyncio.run(measure_runs(stack, report, sizes, budget, servers, url_makers))
    asyncio.run(profile(stack, report, sizes, servers, url_makers))
    return report


async def measure_runs(
    stack: Stack,
    report: Report,
    sizes: Sizes,
    budget: Budget,
    servers: dict[str, Proc],
    url_makers: dict[str, Callable[[], str]],
) -> None:
    """Warm every server up, then measure them in turn, run after run."""
    for label, make_url in url_makers.items():
        # Unmeasured: the first connections load code and open Redis pools.
        urls = [make_url() for _ in range(sizes.warm_up)]
        await run_batch(servers[label], urls, origin=stack.origin, concurrency=2)

    unexpected: Counter[str] = Counter()
    for run_index in range(sizes.runs):
        if budget.spent:
            report.notes.append(f"Time budget spent after {run_index} runs.")
            break
        for label in rotated(list(url_makers), run_index):
            make_url = url_makers[label]
            figures, outcomes = await measure(
                servers[label],
                [make_url() for _ in range(sizes.throughput)],
                [make_url() for _ in range(sizes.latency)],
                origin=stack.origin,
                concurrency=sizes.concurrency,
            )
            report.record(run_index, label, figures)
            for outcome, count in outcomes.items():
                if outcome != "ok":
                    unexpected[f"{label}: {outcome}"] += count
    if unexpected:
        report.notes.append(f"Handshakes that did not succeed: {dict(unexpected)}.")


async def profile(
    stack: Stack,
    report: Report,
    sizes: Sizes,
    servers: dict[str, Proc],
    url_makers: dict[str, Callable[[], str]],
) -> None:
    """Profile the event loop of both daphne servers during a throughput phase."""
    profiles = {}
    for label, kind in ((DASHIFY, "dashify"), (ECHO, "echo")):
        urls = [url_makers[label]() for _ in range(sizes.profiled)]
        batch = run_batch(
            servers[label], urls, origin=stack.origin, concurrency=sizes.concurrency
        )
        _, profiles[label] = await profiled(
            servers[label], stack.profile_dir / f"{kind}.prof", batch, FOCUS
        )
    report.extra["profiles"] = profiles
