"""
2. Refused handshakes: what a bad token costs Dashify, against an accepted
handshake measured in the same run.

Four kinds of refusal, each a token that bench.mint made to fail in one
place: a bad signature, an expired token, the wrong audience (all three
refused by accounts.tokens before Redis is asked), and a replayed token
(valid, but already spent: refused after the spend script runs in Redis).
Replays reuse the tokens spent by the previous run's accepted handshakes
(by a warm-up batch for the first run). The server's security log is read
after each batch to confirm that every refusal had the intended reason.
"""

import asyncio
import re
from collections import Counter
from dataclasses import asdict, dataclass

from bench.common import Budget, Report, Target

# The handshake benchmark's method, and so its figures.
from bench.handshake import METRICS, measure, rotated, run_batch
from bench.stack import Stack

NAME = "rejections"
TITLE = "2. Refused handshakes"
SUMMARY = (
    "Handshakes with a token that Dashify must refuse (HTTP 403 before the "
    "socket is accepted), against accepted handshakes in the same run. Same "
    "method as the handshake benchmark: rate and CPU from a concurrent phase, "
    "latency from a sequential one. The CPU ratio is the figure that matters: "
    "a refusal should cost the server less than an acceptance, so that a flood "
    "of bad tokens loads it no more than the same number of good ones."
)
ACCEPTED = "accepted handshake"
REFUSALS = {
    "bad-signature": "bad signature",
    "expired": "expired token",
    "wrong-audience": "wrong audience",
    "replayed": "replayed token",
}
REASONS = {
    "bad-signature": "bad-signature",
    "expired": "expired",
    "wrong-audience": "wrong-audience",
    "replayed": "replayed-or-revoked",
}
REASON_LINE = re.compile(r"ws handshake refused reason=(\S+)")


@dataclass(frozen=True)
class Sizes:
    throughput: int
    latency: int
    concurrency: int
    runs: int


FULL = Sizes(throughput=400, latency=120, concurrency=8, runs=3)
SMOKE = Sizes(throughput=8, latency=4, concurrency=2, runs=1)


def run(stack: Stack, *, smoke: bool, budget: Budget) -> Report:
    sizes = SMOKE if smoke else FULL
    report = Report(NAME, TITLE, SUMMARY, METRICS, sizes=asdict(sizes))
    report.row(ACCEPTED)
    for kind, label in REFUSALS.items():
        report.row(label, baseline=ACCEPTED)
        cheaper = "no dearer" if kind == "replayed" else "cheaper"
        report.targets.append(
            Target(
                f"{label}: CPU {cheaper} than an accepted handshake",
                label,
                "cpu_us",
                "<=" if kind == "replayed" else "<",
                1.0,
                ACCEPTED,
            )
        )

    per_run = sizes.throughput + sizes.latency
    forged = {kind: per_run * sizes.runs for kind in REFUSALS if kind != "replayed"}
    # Valid tokens: every run's accepted batch, and a warm-up batch whose
    # spent tokens are the first run's replays.
    minted = stack.mint("alice", {"valid": per_run * (sizes.runs + 1), **forged})
    asyncio.run(measure_runs(stack, report, sizes, budget, minted))
    return report


async def measure_runs(
    stack: Stack,
    report: Report,
    sizes: Sizes,
    budget: Budget,
    minted: dict[str, list[str]],
) -> None:
    server = stack.server("dashify")
    per_run = sizes.throughput + sizes.latency

    def url(token: str) -> str:
        return stack.ws_url("dashify", "/ws/", token)

    warm_up = [minted["valid"].pop() for _ in range(per_run)]
    await run_batch(
        server, [url(t) for t in warm_up], origin=stack.origin, concurrency=4
    )
    spent = warm_up

    reasons: dict[str, Counter[str]] = {}
    unexpected: Counter[str] = Counter()
    kinds = ["accepted", *REFUSALS]
    for run_index in range(sizes.runs):
        if budget.spent:
            report.notes.append(f"Time budget spent after {run_index} runs.")
            break
        replays, spent_now = spent, []
        for kind in rotated(kinds, run_index):
            if kind == "accepted":
                tokens = [minted["valid"].pop() for _ in range(per_run)]
                spent_now = tokens
            elif kind == "replayed":
                tokens = replays
            else:
                tokens = [minted[kind].pop() for _ in range(per_run)]
            label = ACCEPTED if kind == "accepted" else REFUSALS[kind]
            expect = "ok" if kind == "accepted" else "http-403"
            offset = server.log_size()
            figures, outcomes = await measure(
                server,
                [url(t) for t in tokens[: sizes.throughput]],
                [url(t) for t in tokens[sizes.throughput :]],
                origin=stack.origin,
                concurrency=sizes.concurrency,
                expect=expect,
            )
            report.record(run_index, label, figures)
            reasons.setdefault(label, Counter()).update(
                REASON_LINE.findall(server.log_since(offset))
            )
            for outcome, count in outcomes.items():
                if outcome != expect:
                    unexpected[f"{label}: {outcome}"] += count
        spent = spent_now

    report.extra["refusal_reasons_logged"] = {k: dict(v) for k, v in reasons.items()}
    check_reasons(report, reasons)
    if unexpected:
        report.notes.append(f"Unexpected handshake outcomes: {dict(unexpected)}.")


def check_reasons(report: Report, reasons: dict[str, Counter[str]]) -> None:
    """Note whether every refusal was logged under its intended reason."""
    stray_notes = []
    for kind, label in REFUSALS.items():
        logged = reasons.get(label, Counter())
        stray = {r: n for r, n in logged.items() if r != REASONS[kind]}
        if stray:
            stray_notes.append(f"{label}: also logged as {stray}.")
    if reasons.get(ACCEPTED):
        stray_notes.append(
            f"Accepted batch logged refusals: {dict(reasons[ACCEPTED])}."
        )
    report.notes += stray_notes or [
        "Every refusal was logged by the server with its intended reason "
        "(`ws handshake refused reason=…` on dashify.security)."
    ]
