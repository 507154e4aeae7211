"""
Shared machinery of the benchmark suite: processes pinned to a core,
server CPU time and memory read from /proc, bounded waits, medians, and
the report every benchmark fills in (rows of per-run figures, ratios to a
baseline row of the same run, targets) with its JSON and Markdown forms.
"""

import asyncio
import math
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
SERVER_READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# A server counts as idle again once it used less than one clock tick of
# CPU during this long (it still finishes closes and log writes after the
# client has its last answer).
SETTLE_QUIET = 0.15
SETTLE_LIMIT = 3.0


class BenchError(Exception):
    """A benchmark could not run; the message says what failed."""


# --- time ---------------------------------------------------------------------


class Budget:
    """A wall-clock allowance that loops check before each new step."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    @property
    def spent(self) -> bool:
        return time.monotonic() >= self.deadline


async def bounded(awaitable: Awaitable[T], seconds: float, what: str) -> T:
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise BenchError(f"{what} took longer than {seconds:g} s") from None


# --- CPUs and processes ---------------------------------------------------------


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs the servers get and which the load generator gets."""

    server: frozenset[int] | None
    client: frozenset[int] | None

    @classmethod
    def detect(cls) -> "CpuPlan":
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2:
            return cls(None, None)
        # Servers get one core to themselves; everything else (the load
        # generator, Redis, helpers) shares the rest.
        return cls(frozenset(available[:1]), frozenset(available[1:]))

    def describe(self) -> str:
        if self.server is None or self.client is None:
            return "one CPU only: servers and load generator share it (not pinned)"
        return (
            f"servers pinned to CPU {_cpus(self.server)}; load generator, Redis "
            f"and helpers to CPU {_cpus(self.client)}"
        )

    def pin_self(self) -> None:
        if self.client is not None:
            os.sched_setaffinity(0, self.client)


def _cpus(cpus: frozenset[int] | None) -> str:
    return "-" if cpus is None else ",".join(str(cpu) for cpu in sorted(cpus))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its threads."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> float:
    """CPU time of a process's threads other than the main one (worker pools)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name != str(pid):
            try:
                total += cpu_seconds_of(task / "stat")
            except (FileNotFoundError, ProcessLookupError):
                # The thread ended between the listing and the read.
                continue
    return total


def cpu_seconds_of(stat_path: Path) -> float:
    # The command name (field 2) may contain spaces; fields after it are
    # numbered from 3, so utime (14) and stime (15) are 11 and 12 here.
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of a process."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * PAGE_BYTES


@dataclass
class Proc:
    """A server process started by the suite."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def thread_cpu(self) -> float:
        return thread_cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cpus: frozenset[int] | None,
    log_dir: Path,
    port: int | None = None,
) -> Proc:
    """Start ``argv`` pinned to ``cpus``; wait until ``port`` accepts, if given."""
    log_path = log_dir / f"{name}.log"
    launcher = [sys.executable, "-m", "bench.launch", _cpus(cpus), "--"]
    with log_path.open("wb") as log:
        popen = subprocess.Popen(  # noqa: S603 (an argument list built here)
            [*launcher, *argv],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    proc = Proc(name=name, popen=popen, log_path=log_path, port=port)
    if port is None:
        return proc
    deadline = time.monotonic() + SERVER_READY_TIMEOUT
    while not port_open(port):
        if not proc.alive() or time.monotonic() > deadline:
            proc.stop()
            raise BenchError(
                f"{name} did not listen on {HOST}:{port}; its log ends:\n"
                f"{proc.log_tail()}"
            )
        time.sleep(0.05)
    return proc


def start_redis(
    data_dir: Path, port: int, *, cpus: frozenset[int] | None, databases: int = 16
) -> Proc:
    """Start a private, non-persistent redis-server on ``port`` of HOST."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise BenchError("redis-server is not on PATH (apt-get install redis-server)")
    return start_process(
        "redis",
        [
            executable,
            "--bind", HOST,
            "--port", str(port),
            "--dir", str(data_dir),
            "--save", "",
            "--appendonly", "no",
            "--databases", str(databases),
        ],
        env=dict(os.environ),
        cpus=cpus,
        log_dir=data_dir,
        port=port,
    )  # fmt: skip


async def settled_cpu(proc: Proc) -> float:
    """Read a server's CPU time once it has finished the work in hand."""
    last = proc.cpu()
    deadline = time.monotonic() + SETTLE_LIMIT
    while time.monotonic() < deadline:
        await asyncio.sleep(SETTLE_QUIET)
        now = proc.cpu()
        if now - last < 1 / CLOCK_TICKS:
            return now
        last = now
    return last


# --- profiles -------------------------------------------------------------------

# Where a function's time is charged: the first of these found in its file's
# path, else the standard-library module, else "C built-ins".
PACKAGES = (
    "accounts",
    "asgiref",
    "autobahn",
    "bench",
    "channels_redis",
    "channels",
    "daphne",
    "dashify",
    "django",
    "jwt",
    "msgpack",
    "realtime",
    "redis",
    "twisted",
    "txaio",
    "uvicorn",
    "websockets",
)
PROFILE_TIMEOUT = 10.0


def _package_of(filename: str) -> str:
    if filename == "~":
        return "C built-ins"
    parts = Path(filename).parts
    for package in PACKAGES:
        if package in parts:
            return package
    for index, part in enumerate(parts[:-1]):
        if part == "site-packages" or part.startswith("python3."):
            following = parts[index + 1]
            if following != "site-packages":
                return following.removesuffix(".py")
    return parts[-1] if parts else filename


# Waiting in epoll is idle time, not work; it is left out of the shares.
IDLE_FUNCTIONS = ("<method 'poll' of 'select.epoll' objects>",)


def summarise_profile(
    path: Path, focus: Sequence[str] = (), top: int = 12
) -> dict[str, Any]:
    """
    Share of the profiled (non-idle) time by package, the costliest
    functions, and the cumulative share of each function named in
    ``focus`` as "package.function" (the largest, if several match).
    """
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    by_package: dict[str, float] = {}
    functions = []
    cumulatives: dict[str, float] = {}
    idle = 0.0
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.items():
        if name in IDLE_FUNCTIONS:
            idle += own
            continue
        package = _package_of(filename)
        by_package[package] = by_package.get(package, 0.0) + own
        where = f" {Path(filename).name}:{line}" if filename != "~" else ""
        label = f"{name} ({package}{where})"
        functions.append((own, cumulative, calls, label))
        key = f"{package}.{name}"
        if key in focus:
            cumulatives[key] = max(cumulatives.get(key, 0.0), cumulative)
    busy = sum(by_package.values()) or 1.0
    functions.sort(reverse=True)
    return {
        # None: the function never ran while profiled (or was renamed).
        "focus": {
            key: cumulatives[key] / busy if key in cumulatives else None
            for key in focus
        },
        "busy_seconds": busy,
        "idle_seconds": idle,
        "by_package": {
            package: seconds / busy
            for package, seconds in sorted(by_package.items(), key=lambda kv: -kv[1])
        },
        "top_functions": [
            {
                "function": label,
                "calls": calls,
                "own_share": own / busy,
                "cumulative_share": cumulative / busy,
            }
            for own, cumulative, calls, label in functions[:top]
        ],
    }


async def profiled(
    proc: Proc, path: Path, work: Awaitable[T], focus: Sequence[str] = ()
) -> tuple[T, Any]:
    """
    Run ``work`` while a server started through bench.profiled profiles
    its event loop; return the work's result and the profile's summary.
    """
    path.unlink(missing_ok=True)
    os.kill(proc.pid, signal.SIGUSR1)
    try:
        result = await work
    finally:
        os.kill(proc.pid, signal.SIGUSR2)
    deadline = time.monotonic() + PROFILE_TIMEOUT
    while not path.exists() or path.stat().st_size == 0:
        if time.monotonic() > deadline:
            raise BenchError(f"{proc.name} wrote no profile to {path}")
        await asyncio.sleep(0.05)
    # The file appears before it is complete; wait for its size to hold.
    size = -1
    while size != path.stat().st_size:
        size = path.stat().st_size
        await asyncio.sleep(0.1)
    return result, summarise_profile(path, focus)


def render_profiles(title: str, profiles: dict[str, Any], packages: int = 10) -> str:
    """A Markdown table of time shares by package, one column per profile."""
    if not profiles:
        return ""
    names = list(profiles)
    shares: dict[str, float] = {}
    for summary in profiles.values():
        for package, share in summary["by_package"].items():
            shares[package] = max(shares.get(package, 0.0), share)
    chosen = sorted(shares, key=lambda p: -shares[p])[:packages]
    lines = [
        f"{title}",
        "",
        "| package | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for package in chosen:
        cells = [
            f"{profiles[name]['by_package'].get(package, 0.0) * 100:.1f}%"
            for name in names
        ]
        lines.append(f"| {package} | " + " | ".join(cells) + " |")
    focus = {needle for summary in profiles.values() for needle in summary["focus"]}
    if focus:
        lines += [
            "",
            "Time inside selected functions and everything they call (cumulative):",
            "",
            "| function | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for needle in sorted(focus):
            found = [profiles[name]["focus"].get(needle) for name in names]
            cells = ["–" if share is None else f"{share * 100:.1f}%" for share in found]
            lines.append(f"| `{needle}` | " + " | ".join(cells) + " |")
    for name in names:
        lines += [
            "",
            f"Costliest functions, {name} (own time, share of the profile):",
            "",
        ]
        for entry in profiles[name]["top_functions"][:8]:
            lines.append(
                f"- `{entry['function']}`: {entry['own_share'] * 100:.1f}% "
                f"({entry['calls']:,} calls)"
            )
    return "\n".join(lines) + "\n"


# --- figures ------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(known) if known else None


Figures = dict[str, float | None]


@dataclass(frozen=True)
class Metric:
    key: str
    header: str
    digits: int
    # Show this figure divided by the row's baseline beside it.
    ratio: bool = False


@dataclass
class Row:
    label: str
    # The row of the same report it is compared with; None for a baseline.
    baseline: str | None = None
    runs: list[Figures] = field(default_factory=list)

    def median(self, key: str) -> float | None:
        return median([run.get(key) for run in self.runs])


@dataclass(frozen=True)
class Target:
    """A goal from the brief, checked against one figure of one row."""

    text: str
    row: str
    key: str
    op: Literal["<", "<=", ">", ">=", "=="]
    threshold: float
    # Compare with this row, run by run (a ratio); None: the figure itself.
    against: str | None = None


@dataclass
class Report:
    """What one benchmark measured; filled run by run."""

    name: str
    title: str
    summary: str
    metrics: list[Metric]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sizes: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    runs_done: int = 0
    error: str | None = None

    def row(self, label: str, baseline: str | None = None) -> Row:
        for row in self.rows:
            if row.label == label:
                return row
        row = Row(label, baseline)
        self.rows.append(row)
        return row

    def record(self, run: int, label: str, figures: Figures) -> None:
        """Store one run's figures for a row declared with ``row()``."""
        row = self.row(label)
        while len(row.runs) < run:
            # A run in which this row could not be measured.
            row.runs.append({})
        row.runs.append(figures)
        self.runs_done = max(self.runs_done, run + 1)

    def find(self, label: str) -> Row:
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(label)

    def ratio(self, label: str, key: str, against: str | None = None) -> float | None:
        """Median over the runs of this row's figure divided by the other's."""
        row = self.find(label)
        other_label = against or row.baseline
        if other_label is None:
            return None
        other = self.find(other_label)
        ratios: list[float | None] = []
        for mine, theirs in zip(row.runs, other.runs, strict=False):
            value, base = mine.get(key), theirs.get(key)
            ratios.append(value / base if value is not None and base else None)
        return median(ratios)

    def evaluate(self, target: Target) -> tuple[float | None, bool | None]:
        if target.against is None:
            value = self.find(target.row).median(target.key)
        else:
            value = self.ratio(target.row, target.key, target.against)
        if value is None:
            return None, None
        met = {
            "<": value < target.threshold,
            "<=": value <= target.threshold,
            ">": value > target.threshold,
            ">=": value >= target.threshold,
            "==": value == target.threshold,
        }[target.op]
        return value, met

    def describe(self, target: Target) -> tuple[str, str]:
        """The measured value and the verdict of a target, for a table."""
        value, met = self.evaluate(target)
        if value is None:
            shown = "–"
        elif target.against is not None:
            shown = f"{value:.2f}×"
        else:
            digits = next(m.digits for m in self.metrics if m.key == target.key)
            shown = _cell(value, digits)
        return shown, {True: "yes", False: "**no**", None: "–"}[met]

    def missing_figures(self) -> list[str]:
        """Row/metric pairs without a single finite value (for the smoke check)."""
        missing = []
        for row in self.rows:
            for metric in self.metrics:
                values = [run.get(metric.key) for run in row.runs]
                if not any(v is not None and math.isfinite(v) for v in values):
                    missing.append(f"{row.label}: {metric.key}")
        return missing

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["medians"] = {
            row.label: {m.key: row.median(m.key) for m in self.metrics}
            for row in self.rows
        }
        data["ratios"] = {
            row.label: {
                m.key: self.ratio(row.label, m.key) for m in self.metrics if m.ratio
            }
            for row in self.rows
            if row.baseline
        }
        data["target_results"] = [
            {"text": t.text, "value": value, "met": met}
            for t in self.targets
            for value, met in [self.evaluate(t)]
        ]
        return data


def _cell(value: float | None, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def render_report(report: Report) -> str:
    """The report's Markdown section: summary, table, targets, notes."""
    lines = [f"### {report.title}", "", report.summary, ""]
    if report.error:
        lines += [f"**Not measured:** {report.error}", ""]
    if report.rows:
        headers = ["", "compared with"]
        for metric in report.metrics:
            headers.append(metric.header)
            if metric.ratio:
                headers.append("ratio")
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "---|" * 2 + "---:|" * (len(headers) - 2))
        for row in report.rows:
            cells = [row.label, row.baseline or "(baseline)"]
            for metric in report.metrics:
                cells.append(_cell(row.median(metric.key), metric.digits))
                if metric.ratio:
                    ratio = report.ratio(row.label, metric.key)
                    cells.append("–" if ratio is None else f"{ratio:.2f}×")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if report.targets:
        lines += ["| Target | Measured | Met |", "|---|---:|:-:|"]
        for target in report.targets:
            shown, verdict = report.describe(target)
            lines.append(f"| {target.text} | {shown} | {verdict} |")
        lines.append("")
    for note in report.notes:
        lines.append(f"- {note}")
    if report.notes:
        lines.append("")
    return "\n".join(lines)
