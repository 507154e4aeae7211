"""
7. HTTP through Dashify's daphne process: the signed-in dashboard page,
minting a WebSocket token, and signing in (Argon2), against the anonymous
login form (a template render with no session and no database query),
all on the same server in the same run.

Each run sends, per endpoint, a batch from a few client threads at once
(the rate and the server CPU) and a batch one at a time (p50/p99), each
client thread with a kept-alive connection. Every answer's status is
checked (200, or 302 for a sign-in). Django runs sync views in one thread
per process under daphne, so more client threads would only queue.
"""

import asyncio
import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

from bench.common import (
    HOST,
    Budget,
    Figures,
    Metric,
    Proc,
    Report,
    percentile,
    settled_cpu,
)
from bench.handshake import rotated
from bench.stack import CSRF_COOKIE, HTTP_TIMEOUT, HttpAnswer, Stack, http_call

NAME = "http"
TITLE = "7. HTTP pages and endpoints"
SUMMARY = (
    "Requests to the Dashify daphne process: rate and CPU from 4 client "
    "threads at once, p50/p99 from one request at a time. Baseline: "
    "`GET /accounts/login/` without a session (a form render). Dashboard: "
    "`GET /` with a session cookie. Token: `POST /accounts/ws-token/` with the "
    "session and CSRF header (signs a token, records it in Redis). Sign-in: "
    "`POST /accounts/login/` with the right password (an Argon2 verification, "
    "a new session in Redis)."
)
LOGIN_FORM = "GET /accounts/login/ (anonymous)"
DASHBOARD = "GET / (dashboard, signed in)"
MINT = "POST /accounts/ws-token/"
SIGN_IN = "POST /accounts/login/ (Argon2)"

METRICS = [
    Metric("rate", "requests/s", 1, ratio=True),
    Metric("p50_ms", "p50 ms", 2),
    Metric("p99_ms", "p99 ms", 2, ratio=True),
    Metric("cpu_us", "server CPU µs/request", 0, ratio=True),
]

Request = Callable[[http.client.HTTPConnection], HttpAnswer]
REQUESTS_TIMEOUT = 120.0


@dataclass(frozen=True)
class Sizes:
    throughput: int
    latency: int
    sign_ins: tuple[int, int]
    concurrency: int
    runs: int


FULL = Sizes(throughput=250, latency=80, sign_ins=(8, 4), concurrency=4, runs=3)
SMOKE = Sizes(throughput=4, latency=3, sign_ins=(2, 1), concurrency=2, runs=1)


@dataclass
class Batch:
    statuses: Counter[int]
    latencies: list[float]
    elapsed: float
    cpu: float


def hammer(
    server: Proc, request: Request, expect: int, count: int, concurrency: int
) -> Batch:
    """Send ``count`` requests from ``concurrency`` threads; time each."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    remaining = [count]
    lock = threading.Lock()
    deadline = time.monotonic() + REQUESTS_TIMEOUT
    port = server.port or 0

    def worker() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                started = time.perf_counter()
                answer = request(conn)
                elapsed = time.perf_counter() - started
                with lock:
                    statuses[answer.status] += 1
                    if answer.status == expect:
                        latencies.append(elapsed)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    cpu_before = server.cpu()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = asyncio.run(settled_cpu(server)) - cpu_before
    return Batch(statuses, latencies, elapsed, cpu)


def measure(
    server: Proc,
    request: Request,
    expect: int,
    counts: tuple[int, int],
    concurrency: int,
) -> tuple[Figures, Counter[int]]:
    """Rate and CPU from concurrent requests, latencies from sequential ones."""
    load = hammer(server, request, expect, counts[0], concurrency)
    single = hammer(server, request, expect, counts[1], 1)
    done = len(load.latencies) + len(single.latencies)
    p50, p99 = percentile(single.latencies, 0.5), percentile(single.latencies, 0.99)
    figures: Figures = {
        "rate": len(load.latencies) / load.elapsed if load.elapsed else None,
        "p50_ms": p50 * 1e3 if p50 is not None else None,
        "p99_ms": p99 * 1e3 if p99 is not None else None,
        "cpu_us": (load.cpu + single.cpu) / done * 1e6 if done else None,
    }
    return figures, load.statuses + single.statuses


def run(stack: Stack, *, smoke: bool, budget: Budget) -> Report:
    sizes = SMOKE if smoke else FULL
    report = Report(NAME, TITLE, SUMMARY, METRICS, sizes=asdict(sizes))
    report.row(LOGIN_FORM)
    for label in (DASHBOARD, MINT, SIGN_IN):
        report.row(label, baseline=LOGIN_FORM)

    server = stack.server("dashify")
    alice = stack.sign_in("alice")
    # Anonymous sign-ins need only a CSRF cookie and its token.
    anonymous_csrf = stack.sign_in("carol", fresh=True).csrf

    def login_form(conn: http.client.HTTPConnection) -> HttpAnswer:
        return http_call(conn, "GET", "/accounts/login/")

    def dashboard(conn: http.client.HTTPConnection) -> HttpAnswer:
        return http_call(conn, "GET", "/", cookies=alice.cookies)

    def mint(conn: http.client.HTTPConnection) -> HttpAnswer:
        return http_call(
            conn,
            "POST",
            "/accounts/ws-token/",
            cookies=alice.cookies,
            headers={"X-CSRFToken": alice.csrf},
        )

    def sign_in(conn: http.client.HTTPConnection) -> HttpAnswer:
        return http_call(
            conn,
            "POST",
            "/accounts/login/",
            cookies={CSRF_COOKIE: anonymous_csrf},
            form={
                "username": "carol",
                "password": stack.password,
                "csrfmiddlewaretoken": anonymous_csrf,
            },
        )

    pages = (sizes.throughput, sizes.latency)
    workloads: dict[str, tuple[Request, int, tuple[int, int]]] = {
        LOGIN_FORM: (login_form, 200, pages),
        DASHBOARD: (dashboard, 200, pages),
        MINT: (mint, 200, pages),
        SIGN_IN: (sign_in, 302, sizes.sign_ins),
    }
    for request, expect, _ in workloads.values():
        # Unmeasured: templates and code load on first use.
        hammer(server, request, expect, 2, 1)

    unexpected: Counter[str] = Counter()
    for run_index in range(sizes.runs):
        if budget.spent:
            report.notes.append(f"Time budget spent after {run_index} runs.")
            break
        for label in rotated(list(workloads), run_index):
            request, expect, counts = workloads[label]
            figures, statuses = measure(
                server, request, expect, counts, sizes.concurrency
            )
            report.record(run_index, label, figures)
            for status, seen in statuses.items():
                if status != expect:
                    unexpected[f"{label}: HTTP {status}"] += seen
    if unexpected:
        report.notes.append(f"Unexpected answers: {dict(unexpected)}.")
    return report
