#!/usr/bin/env python3
"""
Run Dashify's development processes together: daphne, the job worker and
the recurring-job scheduler, after migrating and seeding the database.

Used by ``make run`` inside scripts/with_redis.py, which provides REDIS_URL.
When any process ends, or on Ctrl-C / SIGTERM, the others are stopped too,
so nothing is left running.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GRACE_SECONDS = 10


def commands(port: str, queue: str) -> dict[str, list[str]]:
    manage = [sys.executable, "manage.py"]
    return {
        "web": [
            str(BIN / "daphne"),
            "-b", "127.0.0.1",
            "-p", port,
            "dashify.asgi:application",
        ],
        "worker": [*manage, "rqworker", queue, "--with-scheduler"],
        "scheduler": [*manage, "rqcron", "worker.cron"],
    }  # fmt: skip


def prepare() -> None:
    for step in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run([sys.executable, "manage.py", *step], cwd=ROOT, check=True)


def stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> int:
    port = os.environ.get("PORT", "8000")
    queue = os.environ.get("DASHIFY_JOB_QUEUE", "default")
    prepare()

    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    for name, argv in commands(port, queue).items():
        children[name] = subprocess.Popen(argv, cwd=ROOT)
    print(f"Dashify: http://127.0.0.1:{port}/  (Ctrl-C stops everything)", flush=True)

    exit_code = 0
    while not stopping:
        ended = [name for name, child in children.items() if child.poll() is not None]
        if ended:
            exit_code = children[ended[0]].returncode or 1
            print(f"Dashify: {ended[0]} exited; stopping the rest.", file=sys.stderr)
            break
        time.sleep(0.2)
    stop(children)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
