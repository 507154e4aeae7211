"""
The benchmark suite in smoke mode (``python -m bench.run --smoke``): every
benchmark runs at tiny sizes, once, against servers it starts itself, and
must report a number for every figure of every row. No timing is judged.
"""

import hashlib
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

BENCHMARKS = (
    "handshake",
    "rejections",
    "fanout",
    "chat",
    "storm",
    "idle",
    "http",
    "asgi_servers",
)
DOC = ROOT / "docs" / "performance.md"
SMOKE_TIMEOUT = 150

pytestmark = [pytest.mark.slow, pytest.mark.timeout(SMOKE_TIMEOUT + 30)]


@dataclass
class SmokeRun:
    result: subprocess.CompletedProcess[str]
    out: Path
    doc_before: str | None
    doc_after: str | None


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    out = tmp_path_factory.mktemp("bench-smoke")
    doc_before = _digest(DOC)
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
        check=False,
    )
    return SmokeRun(result, out, doc_before, _digest(DOC))


def test_smoke_run_exits_cleanly(smoke: SmokeRun) -> None:
    assert smoke.result.returncode == 0, smoke.result.stderr[-4000:]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_ran_without_error(smoke: SmokeRun, name: str) -> None:
    report = json.loads((smoke.out / f"{name}.json").read_text())

    assert report["error"] is None
    assert report["runs_done"] == 1


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_reports_a_number_for_every_figure(
    smoke: SmokeRun, name: str
) -> None:
    report = json.loads((smoke.out / f"{name}.json").read_text())
    keys = [metric["key"] for metric in report["metrics"]]

    missing = [
        f"{row}: {key}"
        for row, figures in report["medians"].items()
        for key in keys
        if not isinstance(figures[key], int | float) or not math.isfinite(figures[key])
    ]

    assert report["medians"], "no rows"
    assert missing == []


def test_smoke_run_leaves_the_performance_page_alone(smoke: SmokeRun) -> None:
    assert smoke.doc_after == smoke.doc_before
