"""
Compare Channels' two Redis layers on the work Dashify's socket gives them.

Usage::

    .venv/bin/python -m bench.channel_layers [--runs N] [--out DIR]

Measures, for channels_redis.core.RedisChannelLayer (the baseline) and
channels_redis.pubsub.RedisPubSubChannelLayer (what Dashify uses), in the
same run, the layers taking turns:

(a) the cost per channel of joining a group: ``new_channel()``, then
    ``group_add()`` to one shared group, then to a group of its own (the
    shape of Dashify's ``session.<binding>`` and ``user.<id>`` groups);
(b) fan-out: the time from one ``group_send()`` until every member of a
    group in the same process has received it;
(c) what a crash leaves in Redis: a child process joins groups and is
    killed with SIGKILL, never calling ``group_discard()``.

Each figure is the median of the runs; the last column is pubsub/core, the
core layer measured in the same run being the baseline. Results go to
stdout and to DIR (default bench/results).

Redis: the server named by REDIS_URL if set, otherwise a private
redis-server started here on a free port of 127.0.0.1 and stopped at the
end. Every key and pub/sub channel is under a prefix unique to this run
(pub/sub channels ignore the database number, so only a prefix keeps them
apart), and only keys under that prefix are deleted. Every loop is bounded
by a count and by the time budget.
"""

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import redis
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from bench.common import HOST, BenchError, free_port, start_redis

T = TypeVar("T")
# Layer -> figure -> one value per run (None where the figure does not apply).
Results = dict[str, dict[str, list[float | None]]]

JOIN_CHANNELS = 500
FANOUT_CHANNELS = 200
CRASH_CHANNELS = 200
DEFAULT_RUNS = 5
MIN_RUNS = 3
# The whole run stays under a minute; a run that would start after this
# many seconds is skipped.
BUDGET_SECONDS = 45.0
STEP_TIMEOUT = 15.0
# How long Redis may take to notice that the killed child's sockets closed.
DISCONNECT_GRACE = 2.0
LAYERS = ("core", "pubsub")
SHARED_GROUP = "tenant.1.room.1"
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def make_layer(kind: str, url: str, prefix: str) -> Any:
    # Dashify's settings give the pub/sub layer only hosts and a prefix;
    # the core layer gets its defaults (group_expiry 86400 s, expiry 60 s).
    if kind == "core":
        return RedisChannelLayer(hosts=[url], prefix=prefix)
    return RedisPubSubChannelLayer(hosts=[url], prefix=prefix)


async def close_layer(kind: str, layer: Any) -> None:
    # Neither call deletes group membership: core's close_pools() only
    # closes connections; pubsub's flush() drops its subscriptions, which
    # is all the membership it has.
    if kind == "core":
        await layer.close_pools()
    else:
        await layer.flush()


def own_group(index: int) -> str:
    return f"session.{index:032x}"


# --- Redis ------------------------------------------------------------------


@contextmanager
def redis_target() -> Iterator[tuple[str, str]]:
    """Yield (URL, description) of the server to use, starting one if needed."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url, "the server named by REDIS_URL"
        return

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dashify-bench-") as data_dir:
        try:
            server = start_redis(Path(data_dir), port, cpus=None)
        except BenchError as error:
            sys.exit(str(error))
        try:
            yield f"redis://{HOST}:{port}/0", f"a private redis-server on {HOST}:{port}"
        finally:
            server.stop()


def count_keys(client: redis.Redis, prefix: str) -> int:
    return sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=1000))


def delete_keys(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.unlink(*keys[start : start + 500])


async def bounded(awaitable: Awaitable[T], what: str) -> T:
    try:
        return await asyncio.wait_for(awaitable, STEP_TIMEOUT)
    except TimeoutError:
        raise SystemExit(f"{what} took longer than {STEP_TIMEOUT:g} s.") from None


# --- (a) joining a group --------------------------------------------------------


async def measure_join(kind: str, url: str, prefix: str) -> dict[str, float]:
    """Return microseconds per channel for each step of joining."""
    layer = make_layer(kind, url, prefix)
    try:
        # Open the connections before timing anything.
        warm = await layer.new_channel()
        await layer.group_add("warm-up", warm)

        started = time.perf_counter()
        channels = [await layer.new_channel() for _ in range(JOIN_CHANNELS)]
        created = time.perf_counter()
        for channel in channels:
            await layer.group_add(SHARED_GROUP, channel)
        shared = time.perf_counter()
        for index, channel in enumerate(channels):
            await layer.group_add(own_group(index), channel)
        own = time.perf_counter()
    finally:
        await close_layer(kind, layer)

    per_channel = 1e6 / JOIN_CHANNELS
    return {
        "new_channel_us": (created - started) * per_channel,
        "group_add_shared_us": (shared - created) * per_channel,
        "group_add_own_us": (own - shared) * per_channel,
    }


# --- (b) fan-out ------------------------------------------------------------------


async def fan_out_once(layer: Any, channels: list[str], payload: str) -> float:
    arrivals: list[float] = []

    async def receive(channel: str) -> None:
        message = await layer.receive(channel)
        arrivals.append(time.perf_counter())
        if message.get("text") != payload:
            raise SystemExit(f"{channel} received the wrong message.")

    receivers = [asyncio.ensure_future(receive(c)) for c in channels]
    # Let every receiver reach its wait (core: BZPOPMIN on the process
    # channel; pubsub: the in-process queue) before the clock starts.
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    await layer.group_send("fan-out", {"type": "chat.message", "text": payload})
    await asyncio.gather(*receivers)
    return max(arrivals) - started


async def measure_fan_out(kind: str, url: str, prefix: str) -> dict[str, float]:
    """Return milliseconds from group_send until all members have the message."""
    layer = make_layer(kind, url, prefix)
    try:
        channels = [await layer.new_channel() for _ in range(FANOUT_CHANNELS)]
        for channel in channels:
            await layer.group_add("fan-out", channel)
        # The first round opens the publishing connection; time the second.
        await bounded(fan_out_once(layer, channels, "warm-up"), "fan-out warm-up")
        seconds = await bounded(fan_out_once(layer, channels, "measured"), "fan-out")
    finally:
        await close_layer(kind, layer)
    return {"fan_out_ms": seconds * 1e3}


# --- (c) a crash ------------------------------------------------------------------


async def crash_child() -> None:
    """In the child: join groups as CRASH_CHANNELS sockets would, then wait."""
    config = json.loads(sys.stdin.readline())
    kind, url, prefix = config["kind"], config["url"], config["prefix"]
    layer = make_layer(kind, url, prefix)
    for index in range(CRASH_CHANNELS):
        channel = await layer.new_channel()
        await layer.group_add(SHARED_GROUP, channel)
        await layer.group_add(own_group(index), channel)
    print("ready", flush=True)
    # The parent kills this process now; the sleep only bounds a lost parent.
    await asyncio.sleep(STEP_TIMEOUT)


def redis_memberships(client: redis.Redis, kind: str, prefix: str) -> int:
    """What Redis still records as members of the shared group."""
    if kind == "core":
        return int(client.zcard(f"{prefix}:group:{SHARED_GROUP}"))
    # Pub/sub keeps no members, only the connections subscribed to the
    # group's channel.
    numsub = client.pubsub_numsub(f"{prefix}__group__{SHARED_GROUP}")
    return int(numsub[0][1])


async def measure_crash(
    kind: str, url: str, prefix: str, client: redis.Redis
) -> dict[str, float | None]:
    """Return what a killed process leaves behind in Redis."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.channel_layers",
        "--crash-child",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        if child.stdin is None or child.stdout is None:
            raise SystemExit("the crash child has no pipes.")
        # The URL goes through a pipe, not argv, where `ps` would show any
        # password in it.
        config = {"kind": kind, "url": url, "prefix": prefix}
        child.stdin.write(json.dumps(config).encode() + b"\n")
        await child.stdin.drain()
        line = await bounded(child.stdout.readline(), "the crash child")
        if line.strip() != b"ready":
            raise SystemExit(f"the crash child failed before joining ({kind}).")
        members_before = redis_memberships(client, kind, prefix)
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGKILL)
        await child.wait()

    # Redis drops a dead client's subscriptions once it sees the socket
    # close; give it a bounded moment. Nothing ever drops core's members.
    deadline = time.monotonic() + DISCONNECT_GRACE
    while kind == "pubsub" and time.monotonic() < deadline:
        if not redis_memberships(client, kind, prefix):
            break
        await asyncio.sleep(0.02)
    keys_after_crash = count_keys(client, prefix)
    members_after = redis_memberships(client, kind, prefix)
    ttl = client.ttl(f"{prefix}:group:{SHARED_GROUP}") if kind == "core" else -2

    # Another process keeps broadcasting to the group, as Dashify would.
    survivor = make_layer(kind, url, prefix)
    try:
        await bounded(
            survivor.group_send(SHARED_GROUP, {"type": "chat.message", "text": "x"}),
            "group_send after the crash",
        )
    finally:
        await close_layer(kind, survivor)
    keys_after_send = count_keys(client, prefix)

    return {
        "members_before_crash": members_before,
        "keys_after_crash": keys_after_crash,
        "members_after_crash": members_after,
        "keys_after_send": keys_after_send,
        # Redis answers -2 for "no such key": nothing to expire.
        "group_ttl_s": float(ttl) if ttl >= 0 else None,
    }


# --- the run ----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    digits: int
    # False where the two layers count different things (sorted-set
    # members against subscribed connections), so a ratio would mislead.
    comparable: bool = True


ROWS = [
    Row("new_channel_us", "(a) new_channel(), per channel (µs)", 1),
    Row("group_add_shared_us", "(a) group_add(), one shared group (µs/channel)", 1),
    Row("group_add_own_us", "(a) group_add(), a group per channel (µs/channel)", 1),
    Row("fan_out_ms", f"(b) fan-out to {FANOUT_CHANNELS} channels (ms)", 2),
    Row("members_before_crash", "(c) shared group as Redis sees it, live", 0, False),
    Row("keys_after_crash", f"(c) keys left after {CRASH_CHANNELS} channels crash", 0),
    Row("members_after_crash", "(c) shared group as Redis sees it, after", 0, False),
    Row("keys_after_send", "(c) keys after one more group_send()", 0),
    Row("group_ttl_s", "(c) seconds until the stale group key expires", 0),
]


async def run_all(url: str, runs: int) -> Results:
    results: Results = {k: {} for k in LAYERS}
    client = redis.Redis.from_url(url, socket_timeout=STEP_TIMEOUT)
    run_prefix = f"dashify-bench-{secrets.token_hex(4)}:"
    deadline = time.monotonic() + BUDGET_SECONDS
    try:
        for run in range(runs):
            if time.monotonic() > deadline:
                print(f"time budget spent after {run} runs", file=sys.stderr)
                break
            # Alternate which layer goes first, so neither always runs on a
            # cold or a warm server.
            order = LAYERS if run % 2 == 0 else LAYERS[::-1]
            for kind in order:
                prefix = f"{run_prefix}{run}:{kind}:"
                join = measure_join(kind, url, prefix + "a:")
                fan_out = measure_fan_out(kind, url, prefix + "b:")
                crash = measure_crash(kind, url, prefix + "c:", client)
                figures = {
                    **await bounded(join, "(a) joining"),
                    **await bounded(fan_out, "(b) fan-out"),
                    **await bounded(crash, "(c) the crash"),
                }
                delete_keys(client, prefix)
                for name, value in figures.items():
                    results[kind].setdefault(name, []).append(value)
    finally:
        delete_keys(client, run_prefix)
        client.close()
    return results


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def render(results: Results, header: str) -> str:
    width = max(len(row.label) for row in ROWS)
    lines = [
        header,
        "",
        f"{'':{width}}  {'core':>9}  {'pubsub':>9}  {'pubsub/core':>11}",
    ]
    for row in ROWS:
        core = median(results["core"][row.key])
        pubsub = median(results["pubsub"][row.key])
        cells = [
            "-" if value is None else f"{value:.{row.digits}f}"
            for value in (core, pubsub)
        ]
        ratio = "-"
        if row.comparable and core is not None and pubsub is not None and core:
            ratio = f"{pubsub / core:.2f}"
        lines.append(f"{row.label:{width}}  {cells[0]:>9}  {cells[1]:>9}  {ratio:>11}")
    return "\n".join(lines)


def describe_server(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--crash-child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.crash_child:
        asyncio.run(crash_child())
        return
    if options.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS}: the figures are medians.")

    with redis_target() as (url, where):
        started = time.monotonic()
        results = asyncio.run(run_all(url, options.runs))
        elapsed = time.monotonic() - started
        server_version = describe_server(url)

    done = len(results["core"].get("keys_after_crash", []))
    if done < MIN_RUNS:
        sys.exit(f"only {done} runs fitted in {BUDGET_SECONDS:g} s; need {MIN_RUNS}.")
    header = (
        f"Channel layers, median of {done} interleaved runs in {elapsed:.1f} s, on "
        f"{where} (Redis {server_version}); channels_redis "
        f"{version('channels-redis')}, redis-py {version('redis')}, Python "
        f"{platform.python_version()}"
    )
    table = render(results, header)
    print(table)

    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "channel_layers.txt").write_text(table + "\n")
    (options.out / "channel_layers.json").write_text(
        json.dumps(
            {
                "runs": done,
                "redis": server_version,
                "channels_redis": version("channels-redis"),
                "python": platform.python_version(),
                "sizes": {
                    "join": JOIN_CHANNELS,
                    "fan_out": FANOUT_CHANNELS,
                    "crash": CRASH_CHANNELS,
                },
                "results": results,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
