"""
4. Chat round trip on one connection: ``chat.send`` answered by the
``chat.message`` broadcast of the room the socket joined, against an echo
frame on the echo app (same daphne and channel layer) and on the bare
websockets server.

Round trips are strictly sequential (the next frame leaves when the answer
to the last has arrived), so the rate is one over the mean round trip and
p50/p99 are latencies, not queueing. Each measurement runs for the same
wall time (or until a count, whichever comes first), so that the server
CPU per message rests on a similar number of clock ticks everywhere.
Dashify's ``ping`` → ``pong`` is measured too: the same socket and consumer
without the database write and the broadcast, which separates the costs.
"""

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from websockets.asyncio.client import ClientConnection

from bench.common import (
    Budget,
    Figures,
    Metric,
    Proc,
    Report,
    bounded,
    percentile,
    settled_cpu,
)
from bench.handshake import rotated
from bench.stack import Stack, close_all, expect_frame, open_ws

NAME = "chat"
TITLE = "4. Chat round trip on one connection"
SUMMARY = (
    "Sequential round trips on one socket: the next frame is sent when the "
    "answer to the previous one has arrived, for 2.5 s. Dashify chat: `chat.send` to a "
    "joined room, answered by the room's `chat.message` broadcast (stored in "
    "the database first, then published through Redis). Dashify ping: `ping` → "
    "`pong`, no database, no broadcast. Echo: a text frame echoed by "
    "`bench/echo_asgi.py`."
)
ECHO = "echo round trip (daphne)"
CHAT = "Dashify chat.send → chat.message (daphne)"
PING = "Dashify ping → pong (daphne)"
BARE = "bare websockets echo"
OP_TIMEOUT = 15.0

METRICS = [
    Metric("rate", "messages/s", 0, ratio=True),
    Metric("p50_ms", "p50 ms", 2, ratio=True),
    Metric("p99_ms", "p99 ms", 2, ratio=True),
    Metric("cpu_us", "server CPU µs/msg", 0, ratio=True),
    Metric("thread_cpu_us", "of which worker threads", 0),
]


@dataclass(frozen=True)
class Sizes:
    messages: int
    seconds: float
    runs: int
    warm_up: int


FULL = Sizes(messages=5000, seconds=2.5, runs=3, warm_up=20)
SMOKE = Sizes(messages=6, seconds=2.0, runs=1, warm_up=2)


@dataclass
class Conversation:
    """A socket, what to send on it and how to recognise the answer."""

    server: Proc
    websocket: ClientConnection
    frame: Callable[[str], str]
    answer: Callable[[str], str]


async def round_trips(
    talk: Conversation, tag: str, count: int, seconds: float = 60.0
) -> Figures:
    """Send ``count`` frames one after another; time each answer."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    cpu_before, threads_before = talk.server.cpu(), talk.server.thread_cpu()
    started = time.perf_counter()
    for index in range(count):
        if time.monotonic() > deadline:
            break
        marker = f"{tag}-{index}"
        sent = time.perf_counter()
        await talk.websocket.send(talk.frame(marker))
        await expect_frame(talk.websocket, talk.answer(marker), OP_TIMEOUT)
        latencies.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - started
    cpu = await settled_cpu(talk.server) - cpu_before
    thread_cpu = max(0.0, talk.server.thread_cpu() - threads_before)
    done = len(latencies)
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return {
        "rate": done / elapsed if elapsed else None,
        "p50_ms": p50 * 1e3 if p50 is not None else None,
        "p99_ms": p99 * 1e3 if p99 is not None else None,
        "cpu_us": cpu / done * 1e6 if done else None,
        "thread_cpu_us": thread_cpu / done * 1e6 if done else None,
    }


def echo_conversation(server: Proc, websocket: ClientConnection) -> Conversation:
    return Conversation(server, websocket, lambda m: m, lambda m: m)


async def open_dashify(stack: Stack, server: Proc, token: str) -> ClientConnection:
    websocket = await open_ws(
        stack.ws_url(server.name, "/ws/", token), stack.origin, OP_TIMEOUT
    )
    await expect_frame(websocket, '"type":"hello"', OP_TIMEOUT)
    return websocket


async def open_echo(stack: Stack, server: Proc, path: str) -> ClientConnection:
    websocket = await open_ws(stack.ws_url(server.name, path), stack.origin, OP_TIMEOUT)
    await expect_frame(websocket, "hello", OP_TIMEOUT)
    return websocket


def ping_conversation(server: Proc, websocket: ClientConnection) -> Conversation:
    # Pongs carry nothing to match; answers come in order on one socket.
    return Conversation(
        server, websocket, lambda m: '{"type":"ping"}', lambda m: '"type":"pong"'
    )


def run(stack: Stack, *, smoke: bool, budget: Budget) -> Report:
    sizes = SMOKE if smoke else FULL
    report = Report(NAME, TITLE, SUMMARY, METRICS, sizes=asdict(sizes))
    report.row(ECHO)
    report.row(CHAT, baseline=ECHO)
    report.row(PING, baseline=ECHO)
    report.row(BARE, baseline=ECHO)
    tokens = stack.mint("alice", {"valid": 2})["valid"]
    room = stack.ids("alice")["room"]
    servers = {kind: stack.server(kind) for kind in ("dashify", "echo", "bare")}
    asyncio.run(measure(stack, report, sizes, budget, tokens, room, servers))
    return report


async def measure(
    stack: Stack,
    report: Report,
    sizes: Sizes,
    budget: Budget,
    tokens: list[str],
    room: int,
    servers: dict[str, Proc],
) -> None:
    dashify = servers["dashify"]
    chat_socket = await open_dashify(stack, dashify, tokens[0])
    ping_socket = await open_dashify(stack, dashify, tokens[1])
    echo_socket = await open_echo(stack, servers["echo"], "/ws/echo/")
    bare_socket = await open_echo(stack, servers["bare"], "/echo")
    try:
        await chat_socket.send(json.dumps({"type": "chat.join", "room": room}))
        await bounded(
            expect_frame(chat_socket, '"type":"chat.history"', OP_TIMEOUT),
            OP_TIMEOUT,
            "chat.join",
        )

        def chat_frame(marker: str) -> str:
            return json.dumps({"type": "chat.send", "room": room, "body": marker})

        talks = {
            ECHO: echo_conversation(servers["echo"], echo_socket),
            CHAT: Conversation(
                dashify, chat_socket, chat_frame, lambda m: f'"body":"{m}"'
            ),
            PING: ping_conversation(dashify, ping_socket),
            BARE: echo_conversation(servers["bare"], bare_socket),
        }
        for label, talk in talks.items():
            await round_trips(talk, f"warm-up-{label[:4]}", sizes.warm_up)
        for run_index in range(sizes.runs):
            if budget.spent:
                report.notes.append(f"Time budget spent after {run_index} runs.")
                break
            for label in rotated(list(talks), run_index):
                figures = await round_trips(
                    talks[label], f"r{run_index}", sizes.messages, sizes.seconds
                )
                report.record(run_index, label, figures)
    finally:
        await close_all([chat_socket, ping_socket, echo_socket, bare_socket])
