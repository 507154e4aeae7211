"""
8. ASGI server: the same applications under uvicorn instead of daphne.

Dashify (dashify.asgi:application) and the echo app each run under both
servers at once, and every run measures the four workloads on both, the
daphne figure being the baseline of the uvicorn one: Dashify's
authenticated handshake, the echo handshake, echo round trips, and
Dashify ``ping`` round trips. Methods as in the handshake and chat
benchmarks. uvicorn runs as ``uvicorn APP --no-access-log`` (and
``--lifespan off``, which Django's ASGI handler does not support anyway);
daphne with its access log off too (``-v 0``).
"""

import asyncio
from collections import Counter
from dataclasses import asdict, dataclass

from bench.chat import (
    echo_conversation,
    open_dashify,
    open_echo,
    ping_conversation,
    round_trips,
)
from bench.common import Budget, Metric, Proc, Report
from bench.handshake import measure as measure_handshakes
from bench.stack import Stack, close_all

NAME = "asgi_servers"
TITLE = "8. daphne or uvicorn"
SUMMARY = (
    "The same workloads on the same applications under daphne (baseline) and "
    "uvicorn, measured in the same runs. Handshakes: rate and CPU with 8 at "
    "once, p50/p99 one at a time. Round trips: sequential on one socket for "
    "2 s."
)
SERVERS = ("daphne", "uvicorn")
KINDS = {
    ("dashify", "daphne"): "dashify",
    ("dashify", "uvicorn"): "dashify-uvicorn",
    ("echo", "daphne"): "echo",
    ("echo", "uvicorn"): "echo-uvicorn",
}
WORKLOADS = {
    "Dashify handshake": "dashify",
    "echo handshake": "echo",
    "echo round trip": "echo",
    "Dashify ping round trip": "dashify",
}

METRICS = [
    Metric("rate", "ops/s", 0, ratio=True),
    Metric("p50_ms", "p50 ms", 2, ratio=True),
    Metric("p99_ms", "p99 ms", 2, ratio=True),
    Metric("cpu_us", "server CPU µs/op", 0, ratio=True),
]


@dataclass(frozen=True)
class Sizes:
    throughput: int
    latency: int
    concurrency: int
    messages: int
    seconds: float
    runs: int


FULL = Sizes(
    throughput=400, latency=120, concurrency=8, messages=5000, seconds=2.0, runs=3
)
SMOKE = Sizes(throughput=8, latency=4, concurrency=2, messages=5, seconds=2.0, runs=1)


def label(workload: str, server: str) -> str:
    return f"{workload}, {server}"


def run(stack: Stack, *, smoke: bool, budget: Budget) -> Report:
    sizes = SMOKE if smoke else FULL
    report = Report(NAME, TITLE, SUMMARY, METRICS, sizes=asdict(sizes))
    for workload in WORKLOADS:
        report.row(label(workload, "daphne"))
        report.row(label(workload, "uvicorn"), baseline=label(workload, "daphne"))

    per_server = (sizes.throughput + sizes.latency) * sizes.runs + 2
    tokens = stack.mint("alice", {"valid": 2 * per_server})["valid"]
    procs = {key: stack.server(kind) for key, kind in KINDS.items()}
    asyncio.run(measure(stack, report, sizes, budget, procs, tokens))
    return report


async def measure(
    stack: Stack,
    report: Report,
    sizes: Sizes,
    budget: Budget,
    procs: dict[tuple[str, str], Proc],
    tokens: list[str],
) -> None:
    def urls(app: str, server: str, count: int) -> list[str]:
        kind = KINDS[(app, server)]
        if app == "echo":
            return [stack.ws_url(kind, "/ws/echo/")] * count
        return [stack.ws_url(kind, "/ws/", tokens.pop()) for _ in range(count)]

    sockets = {}
    for server in SERVERS:
        dashify, echo = procs[("dashify", server)], procs[("echo", server)]
        sockets[("ping", server)] = ping_conversation(
            dashify, await open_dashify(stack, dashify, tokens.pop())
        )
        sockets[("echo", server)] = echo_conversation(
            echo, await open_echo(stack, echo, "/ws/echo/")
        )
    failed: Counter[str] = Counter()
    try:
        for talk in sockets.values():
            await round_trips(talk, "warm-up", 20)
        for run_index in range(sizes.runs):
            if budget.spent:
                report.notes.append(f"Time budget spent after {run_index} runs.")
                break
            # daphne first in even runs, uvicorn first in odd ones.
            order = SERVERS if run_index % 2 == 0 else SERVERS[::-1]
            for workload, app in WORKLOADS.items():
                for server in order:
                    row = label(workload, server)
                    if workload.endswith("handshake"):
                        figures, outcomes = await measure_handshakes(
                            procs[(app, server)],
                            urls(app, server, sizes.throughput),
                            urls(app, server, sizes.latency),
                            origin=stack.origin,
                            concurrency=sizes.concurrency,
                        )
                        failed.update(
                            {f"{row}: {k}": n for k, n in outcomes.items() if k != "ok"}
                        )
                    else:
                        talk = sockets[("ping" if app == "dashify" else "echo", server)]
                        figures = await round_trips(
                            talk, f"r{run_index}", sizes.messages, sizes.seconds
                        )
                    report.record(run_index, row, figures)
        if failed:
            report.notes.append(f"Handshakes that did not succeed: {dict(failed)}.")
    finally:
        await close_all([talk.websocket for talk in sockets.values()])
