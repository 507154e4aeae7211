"""
Run daphne with a profiler switch.

Usage::

    python -m bench.profiled PROFILE_PATH -- DAPHNE_ARGS...

This is plain daphne (its own command-line entry point, in this process)
until SIGUSR1 arrives: that starts cProfile on the main thread, which runs
the event loop and with it daphne, the consumers and the channel layer.
SIGUSR2 stops it and writes the statistics of that window alone to
PROFILE_PATH. Work that
Django does in its thread pool (database_sync_to_async) is not profiled.
"""

import cProfile
import signal
import sys
from types import FrameType

from daphne.cli import CommandLineInterface


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] != "--":
        sys.exit(__doc__)
    path, daphne_args = argv[0], argv[2:]
    profilers: list[cProfile.Profile] = []

    def start(signum: int, frame: FrameType | None) -> None:
        # A new profiler each time: each profile covers one window only.
        profilers.append(cProfile.Profile())
        profilers[-1].enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        if profilers:
            profiler = profilers.pop()
            profiler.disable()
            profiler.dump_stats(path)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = ["daphne", *daphne_args]
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main(sys.argv[1:])
