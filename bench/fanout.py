"""
3. Fan-out: one board event to every socket of one tenant watching the
board, against the stock Channels ``group_send`` on the echo app and a
bare ``websockets.broadcast``; Dashify and the echo app each under daphne
and under uvicorn.

All receivers of all five systems are opened first and stay open; each
run then sends a few events through each system in turn (the order
rotates) and times, per event, from the trigger frame leaving the client
until the last receiver has the event:

Dashify   N sockets of alice, each subscribed to board 1
          (``board.subscribe`` answered by ``board.snapshot``); one more
          socket sends ``card.update`` with a new title, which Dashify
          stores and broadcasts as ``card.updated`` to the board's group.
stock     N sockets on /ws/group/ of the echo app; one more on
          /ws/group/send/ turns a text frame into one ``group_send``.
bare      N sockets on /sub of the bare server; one more on /pub whose
          frame is broadcast to them.

The load generator's own CPU time per event is reported too: when it is
close to the fan-out time, the client, not the server, set the pace.
After the runs, the event loop of both daphne servers is profiled during
a few more events.
"""

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bench.common import (
    Budget,
    Figures,
    Metric,
    Proc,
    Report,
    Target,
    bounded,
    profiled,
    settled_cpu,
)
from bench.handshake import rotated
from bench.stack import Stack, close_all, expect_frame, open_many, open_ws

NAME = "fanout"
TITLE = "3. Fan-out of one board event"
SUMMARY = (
    "One event delivered to N sockets in one server process. Times run from "
    "the trigger frame leaving the client until the first socket, half of "
    "them, and the last one (*fan-out ms*) have the event (medians of the "
    "run's events); Dashify's include storing the change in the database "
    "before it is published. *deliveries/s*: N divided by the fan-out time; "
    "*client "
    "CPU ms/event*: the load generator's own CPU per event (a fan-out time "
    "close to it means the client set the pace)."
)
STOCK = "stock group_send (echo app, daphne)"
DASHIFY = "Dashify card.update → card.updated (daphne)"
STOCK_UVICORN = "stock group_send (echo app, uvicorn)"
DASHIFY_UVICORN = "Dashify card.update → card.updated (uvicorn)"
BARE = "bare websockets broadcast"
OP_TIMEOUT = 30.0
EVENT_TIMEOUT = 60.0
OPEN_CONCURRENCY = 50

# Functions whose share of the event loop's time the profile reports.
FOCUS = (
    "realtime.dispatch",
    "realtime.deliver",
    "realtime._drain",
    "realtime.send_frame",
    "channels_redis._receive_message",
    "channels_redis.receive",
    "channels.dispatch",
    "bench.relay",
    "daphne.handle_reply",
    "autobahn.sendMessage",
    "autobahn.hl",
)

METRICS = [
    Metric("sockets", "sockets", 0),
    Metric("first_ms", "first delivery ms", 1),
    Metric("p50_ms", "median delivery ms", 1),
    Metric("fanout_ms", "fan-out ms", 1, ratio=True),
    Metric("deliveries", "deliveries/s", 0, ratio=True),
    Metric("cpu_us", "server CPU µs/delivery", 1, ratio=True),
    Metric("client_ms", "client CPU ms/event", 1),
]


@dataclass(frozen=True)
class Sizes:
    sockets: int
    events: int
    runs: int
    profiled_events: int


FULL = Sizes(sockets=1000, events=5, runs=3, profiled_events=3)
SMOKE = Sizes(sockets=5, events=1, runs=1, profiled_events=1)


@dataclass
class Event:
    marker: str
    expected: int
    sent_at: float = 0.0
    arrivals: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None


@dataclass
class System:
    """One of the three things measured: its receivers and its trigger."""

    label: str
    server: Proc
    receivers: list[ClientConnection]
    trigger: ClientConnection
    payload: Callable[[str], str]
    current: Event | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def listen(self) -> None:
        for websocket in self.receivers:
            self.tasks.append(asyncio.create_task(self._receive(websocket)))
        self.tasks.append(asyncio.create_task(self._watch_trigger()))

    async def _receive(self, websocket: ClientConnection) -> None:
        try:
            async for message in websocket:
                event = self.current
                if event and isinstance(message, str) and event.marker in message:
                    event.arrivals.append(time.perf_counter())
                    if len(event.arrivals) >= event.expected:
                        event.done.set()
        except ConnectionClosed:
            pass

    async def _watch_trigger(self) -> None:
        # Dashify answers a failed card.update with an error frame.
        try:
            async for message in self.trigger:
                if self.current and '"type":"error"' in str(message):
                    self.current.error = str(message)
                    self.current.done.set()
        except ConnectionClosed:
            pass

    async def fan_out(self, marker: str) -> tuple[Event, float, float]:
        """Send one event; return it, the server CPU and client CPU it took."""
        event = Event(marker, expected=len(self.receivers))
        self.current = event
        cpu_before, client_before = self.server.cpu(), time.process_time()
        event.sent_at = time.perf_counter()
        await self.trigger.send(self.payload(marker))
        try:
            await asyncio.wait_for(event.done.wait(), EVENT_TIMEOUT)
        except TimeoutError:
            event.error = f"{len(event.arrivals)} of {event.expected} delivered"
        client = time.process_time() - client_before
        cpu = await settled_cpu(self.server) - cpu_before
        self.current = None
        return event, cpu, client

    async def close(self) -> None:
        await close_all([*self.receivers, self.trigger])
        for task in self.tasks:
            task.cancel()


def run(stack: Stack, *, smoke: bool, budget: Budget) -> Report:
    sizes = SMOKE if smoke else FULL
    report = Report(NAME, TITLE, SUMMARY, METRICS, sizes=asdict(sizes))
    report.row(STOCK)
    report.row(DASHIFY, baseline=STOCK)
    report.row(STOCK_UVICORN, baseline=STOCK)
    report.row(DASHIFY_UVICORN, baseline=STOCK_UVICORN)
    report.row(BARE, baseline=STOCK)
    report.targets = [
        Target(
            "Dashify fan-out < 4× bare broadcast", DASHIFY, "fanout_ms", "<", 4, BARE
        ),
        Target(
            "Dashify deliveries/s ≥ 5× stock group_send",
            DASHIFY,
            "deliveries",
            ">=",
            5,
            STOCK,
        ),
        Target(
            "Dashify fan-out under uvicorn < 1.5× bare broadcast",
            DASHIFY_UVICORN,
            "fanout_ms",
            "<",
            1.5,
            BARE,
        ),
        Target(
            "Dashify deliveries/s under uvicorn ≥ 5× stock group_send under uvicorn",
            DASHIFY_UVICORN,
            "deliveries",
            ">=",
            5,
            STOCK_UVICORN,
        ),
    ]
    tokens = stack.mint("alice", {"valid": 2 * (sizes.sockets + 1)})["valid"]
    ids = stack.ids("alice")
    kinds = ("dashify", "echo", "bare", "dashify-uvicorn", "echo-uvicorn")
    servers = {kind: stack.server(kind) for kind in kinds}
    asyncio.run(measure(stack, report, sizes, budget, tokens, ids, servers))
    return report


async def measure(
    stack: Stack,
    report: Report,
    sizes: Sizes,
    budget: Budget,
    tokens: list[str],
    ids: dict[str, int],
    servers: dict[str, Proc],
) -> None:
    systems: dict[str, System] = {}
    try:
        systems[BARE] = await open_bare(stack, servers["bare"], sizes.sockets)
        per_server = sizes.sockets + 1
        for label, kind in ((STOCK, "echo"), (STOCK_UVICORN, "echo-uvicorn")):
            systems[label] = await open_stock(
                stack, label, kind, servers[kind], sizes.sockets
            )
        for label, kind, first in (
            (DASHIFY, "dashify", 0),
            (DASHIFY_UVICORN, "dashify-uvicorn", per_server),
        ):
            systems[label] = await open_dashify(
                stack,
                label,
                kind,
                servers[kind],
                sizes.sockets,
                tokens[first : first + per_server],
                ids,
            )
        for system in systems.values():
            system.listen()
            # Unmeasured: the first event pays for lazy imports and pools.
            await system.fan_out(f"warm-up-{system.server.name}")

        errors: list[str] = []
        for run_index in range(sizes.runs):
            if budget.spent:
                report.notes.append(f"Time budget spent after {run_index} runs.")
                break
            for label in rotated(list(systems), run_index):
                figures = await measure_events(
                    systems[label], f"r{run_index}", sizes.events, errors
                )
                report.record(run_index, label, figures)
        if errors:
            report.notes.append("Events not fully delivered: " + "; ".join(errors[:5]))

        profiles = {}
        for label in (DASHIFY, STOCK):
            system = systems[label]
            path = stack.profile_dir / f"{system.server.name}.prof"
            events = measure_events(system, "profiled", sizes.profiled_events, [])
            _, profiles[label] = await profiled(system.server, path, events, FOCUS)
        report.extra["profiles"] = profiles
    finally:
        for system in systems.values():
            await system.close()


async def measure_events(
    system: System, run_tag: str, count: int, errors: list[str]
) -> Figures:
    """Fan ``count`` events out through one system; return the run's figures."""
    firsts, halves, spans = [], [], []
    server_cpu = client_cpu = 0.0
    for index in range(count):
        event, cpu, client = await system.fan_out(f"fanout-{run_tag}-{index}")
        server_cpu += cpu
        client_cpu += client
        if event.error:
            errors.append(f"{system.label}: {event.error}")
            continue
        offsets = sorted(at - event.sent_at for at in event.arrivals)
        firsts.append(offsets[0])
        halves.append(offsets[len(offsets) // 2])
        spans.append(offsets[-1])
    sockets = len(system.receivers)
    span = statistics.median(spans) if spans else None
    return {
        "sockets": sockets,
        "first_ms": statistics.median(firsts) * 1e3 if firsts else None,
        "p50_ms": statistics.median(halves) * 1e3 if halves else None,
        "fanout_ms": span * 1e3 if span is not None else None,
        "deliveries": sockets / span if span else None,
        "cpu_us": server_cpu / (count * sockets) * 1e6 if count and sockets else None,
        "client_ms": client_cpu / count * 1e3 if count else None,
    }


async def open_system(
    label: str,
    server: Proc,
    count: int,
    open_receiver: Callable[[int], Awaitable[ClientConnection]],
    open_trigger: Callable[[], Awaitable[ClientConnection]],
    payload: Callable[[str], str],
) -> System:
    receivers, failures = await open_many(
        count,
        open_receiver,
        concurrency=OPEN_CONCURRENCY,
        timeout=count * 1.0 + OP_TIMEOUT,
    )
    if failures:
        await close_all(receivers)
        raise RuntimeError(f"{label}: sockets failed to open: {dict(failures)}")
    trigger = await bounded(open_trigger(), OP_TIMEOUT, f"{label} trigger")
    return System(label, server, receivers, trigger, payload)


async def open_bare(stack: Stack, server: Proc, count: int) -> System:
    async def receiver(index: int) -> ClientConnection:
        websocket = await open_ws(
            stack.ws_url("bare", "/sub"), stack.origin, OP_TIMEOUT
        )
        await expect_frame(websocket, "hello", OP_TIMEOUT)
        return websocket

    async def trigger() -> ClientConnection:
        return await open_ws(stack.ws_url("bare", "/pub"), stack.origin, OP_TIMEOUT)

    return await open_system(BARE, server, count, receiver, trigger, lambda m: m)


async def open_stock(
    stack: Stack, label: str, kind: str, server: Proc, count: int
) -> System:
    async def receiver(index: int) -> ClientConnection:
        url = stack.ws_url(kind, "/ws/group/")
        websocket = await open_ws(url, stack.origin, OP_TIMEOUT)
        await expect_frame(websocket, "hello", OP_TIMEOUT)
        return websocket

    async def trigger() -> ClientConnection:
        url = stack.ws_url(kind, "/ws/group/send/")
        return await open_ws(url, stack.origin, OP_TIMEOUT)

    return await open_system(label, server, count, receiver, trigger, lambda m: m)


async def open_dashify(
    stack: Stack,
    label: str,
    kind: str,
    server: Proc,
    count: int,
    tokens: list[str],
    ids: dict[str, int],
) -> System:
    subscribe = json.dumps({"type": "board.subscribe", "board": ids["board"]})

    async def receiver(index: int) -> ClientConnection:
        url = stack.ws_url(kind, "/ws/", tokens[index])
        websocket = await open_ws(url, stack.origin, OP_TIMEOUT)
        await expect_frame(websocket, '"type":"hello"', OP_TIMEOUT)
        await websocket.send(subscribe)
        await expect_frame(websocket, '"type":"board.snapshot"', OP_TIMEOUT)
        return websocket

    async def trigger() -> ClientConnection:
        url = stack.ws_url(kind, "/ws/", tokens[count])
        websocket = await open_ws(url, stack.origin, OP_TIMEOUT)
        await expect_frame(websocket, '"type":"hello"', OP_TIMEOUT)
        return websocket

    def payload(marker: str) -> str:
        return json.dumps({"type": "card.update", "card": ids["card"], "title": marker})

    return await open_system(label, server, count, receiver, trigger, payload)
