"""
6. Idle cost: what N open, silent, authenticated sockets cost one server
process in CPU and memory, against the same number of echo-app sockets on
daphne and of bare websockets sockets.

Fresh processes of all three servers get N sockets each, opened before
measuring (each reads its first frame, then nothing more is sent either
way except the servers' own keepalive pings, which the client answers).
Then the CPU time of all three is read over the same windows of wall
time (WINDOW seconds each: Dashify's sockets check their session every
30 s, so a window holds one check per socket), and the resident memory at
the end of each window, less the memory of the same process before its
sockets were opened.

The client holds 3N sockets in one process, so N is reduced when the
open-files limit would not allow that (noted in the report).
"""

import asyncio
import time
from dataclasses import asdict, dataclass

from websockets.asyncio.client import ClientConnection

from bench.common import Budget, Metric, Proc, Report, Target
from bench.launch import raise_open_files_limit
from bench.stack import (
    LONG_KEEPALIVE_S,
    Stack,
    close_all,
    expect_frame,
    open_many,
    open_ws,
)

NAME = "idle"
TITLE = "6. Idle sockets"
SUMMARY = (
    "N open, silent sockets per server process (Dashify: authenticated, "
    "joined to their session and user groups). *CPU % of a core*: server "
    "CPU time over a window of wall time, all three servers measured over the "
    "same window; *memory per socket*: resident memory at the end of the "
    "window minus the same process's before its sockets were opened, divided "
    "by N. Daphne and the bare server ping every idle socket every 20 s; "
    "Dashify's server process also checks its sockets' sessions in Redis "
    f"every 30 s. The last row is Dashify under daphne's `--ping-interval "
    f"{LONG_KEEPALIVE_S}`, measured alone afterwards over one window of "
    f"{LONG_KEEPALIVE_S} s."
)
ECHO = "echo (daphne)"
DASHIFY = "Dashify (daphne)"
BARE = "bare websockets"
LONG = f"Dashify (daphne, keepalive every {LONG_KEEPALIVE_S} s)"
OP_TIMEOUT = 30.0
OPEN_CONCURRENCY = 50
# Descriptors the client keeps for itself beyond the sockets.
SPARE_FILES = 500

METRICS = [
    Metric("sockets", "sockets", 0),
    Metric("cpu_pct", "CPU % of a core", 2, ratio=True),
    Metric("cpu_us_per_socket_s", "CPU µs per socket-second", 2, ratio=True),
    Metric("rss_kib_per_socket", "memory KiB/socket", 1, ratio=True),
    Metric("rss_mib", "memory MiB (process)", 0),
]


@dataclass(frozen=True)
class Sizes:
    sockets: int
    windows: int
    window_s: float


FULL = Sizes(sockets=5000, windows=3, window_s=30.0)
SMOKE = Sizes(sockets=10, windows=1, window_s=1.0)


def run(stack: Stack, *, smoke: bool, budget: Budget) -> Report:
    sizes = SMOKE if smoke else FULL
    soft, hard = raise_open_files_limit()
    fitting = (soft - SPARE_FILES) // 3
    report = Report(NAME, TITLE, SUMMARY, METRICS)
    if fitting < sizes.sockets:
        report.notes.append(
            f"Reduced from {sizes.sockets} to {fitting} sockets per server: the "
            f"client holds all of them and its open-files limit is {soft} "
            f"(hard {hard})."
        )
        sizes = Sizes(fitting, sizes.windows, sizes.window_s)
    report.sizes = {**asdict(sizes), "open_files_soft": soft, "open_files_hard": hard}
    report.row(ECHO)
    report.row(DASHIFY, baseline=ECHO)
    report.row(BARE, baseline=ECHO)
    report.row(LONG, baseline=ECHO)
    report.targets = [
        Target(
            f"Dashify: {sizes.sockets:,} idle sockets < 1% of a core",
            DASHIFY,
            "cpu_pct",
            "<",
            1,
        ),
        Target(
            f"Dashify, keepalive every {LONG_KEEPALIVE_S} s: < 1% of a core",
            LONG,
            "cpu_pct",
            "<",
            1,
        ),
        Target(
            "Dashify memory per socket ≤ 1.5× echo",
            DASHIFY,
            "rss_kib_per_socket",
            "<=",
            1.5,
            ECHO,
        ),
    ]

    tokens = stack.mint("alice", {"valid": 2 * (sizes.sockets + 1)})["valid"]
    servers = {
        ECHO: stack.fresh("echo", smoke),
        DASHIFY: stack.fresh("dashify", smoke),
        BARE: stack.fresh("bare", smoke),
    }
    openers = {
        ECHO: lambda i: open_one(stack, "echo", "/ws/echo/", None),
        DASHIFY: lambda i: open_one(stack, "dashify", "/ws/", tokens[i]),
        BARE: lambda i: open_one(stack, "bare", "/echo", None),
    }
    asyncio.run(measure(report, sizes, budget, servers, openers))

    # The same sockets under a keepalive as long as a window, measured alone
    # after the others have closed: one window that holds each socket's
    # one ping.
    later = tokens[sizes.sockets + 1 :]
    long_server = {LONG: stack.fresh("dashify-long-keepalive", smoke)}
    long_opener = {
        LONG: lambda i: open_one(stack, "dashify-long-keepalive", "/ws/", later[i])
    }
    long_sizes = Sizes(
        sizes.sockets, windows=1, window_s=1.0 if smoke else float(LONG_KEEPALIVE_S)
    )
    asyncio.run(measure(report, long_sizes, budget, long_server, long_opener))
    return report


async def open_one(
    stack: Stack, kind: str, path: str, token: str | None
) -> ClientConnection:
    websocket = await open_ws(stack.ws_url(kind, path, token), stack.origin, OP_TIMEOUT)
    await expect_frame(websocket, "hello", OP_TIMEOUT)
    return websocket


async def measure(
    report: Report,
    sizes: Sizes,
    budget: Budget,
    servers: dict[str, Proc],
    openers: dict,
) -> None:
    sockets: dict[str, list[ClientConnection]] = {}
    started = time.monotonic()
    try:
        baseline_rss = {}
        for label, opener in openers.items():
            # One socket first, so that code loaded on first use is not
            # counted as the sockets' memory.
            first = await opener(sizes.sockets)
            await close_all([first])
            await asyncio.sleep(0.5)
            baseline_rss[label] = servers[label].rss()
            sockets[label], failures = await open_many(
                sizes.sockets,
                opener,
                concurrency=OPEN_CONCURRENCY,
                timeout=sizes.sockets * 0.05 + 60,
            )
            if failures:
                report.notes.append(
                    f"{label}: sockets that failed to open: {dict(failures)}."
                )
        report.extra["open_seconds"] = round(time.monotonic() - started, 1)
        # Let the last handshakes' work (logging, Redis) finish.
        await asyncio.sleep(2)

        for window in range(sizes.windows):
            if budget.left() < sizes.window_s:
                report.notes.append(f"Time budget spent after {window} windows.")
                break
            cpu_before = {label: proc.cpu() for label, proc in servers.items()}
            started = time.monotonic()
            await asyncio.sleep(sizes.window_s)
            elapsed = time.monotonic() - started
            for label, proc in servers.items():
                held = len(sockets[label])
                cpu = proc.cpu() - cpu_before[label]
                rss = proc.rss()
                report.record(
                    window,
                    label,
                    {
                        "sockets": held,
                        "cpu_pct": cpu / elapsed * 100,
                        "cpu_us_per_socket_s": cpu / elapsed / held * 1e6
                        if held
                        else None,
                        "rss_kib_per_socket": (rss - baseline_rss[label]) / held / 1024
                        if held
                        else None,
                        "rss_mib": rss / 2**20,
                    },
                )
    finally:
        closing = time.monotonic()
        for opened in sockets.values():
            await close_all(opened, timeout=180)
        report.extra["close_seconds"] = round(time.monotonic() - closing, 1)
